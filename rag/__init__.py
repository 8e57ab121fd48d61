"""Ask questions of your own documents, offline, with every claim cited.

    from rag import Pipeline
    answer = Pipeline.from_settings().ask("How many nations signed the Bletchley Declaration?")
"""

from .config import Settings
from .errors import RagError

__all__ = ["Pipeline", "Settings", "RagError"]


def __getattr__(name):
    # Pipeline is imported on first use, so `import rag` stays light.
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
