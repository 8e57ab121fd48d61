"""The web UI's parts: answers rendered as HTML, the events' backend, the saved-conversations sidebar, and
the Summarize tab's Compare.

`app.py` lays them out and serves them."""

import os

# Read at import time, so set before gradio loads: no telemetry, and (rag.config forces
# HF_HUB_OFFLINE) no model-hub calls from the huggingface_hub that gradio imports.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
