#!/bin/sh
# The generation host with vLLM (needs a GPU; not installed by this project: pip install vllm).
# vLLM batches concurrent requests, so raise llm_concurrency on the UI host.
#   MODEL=/srv/models/Qwen2.5-3B-Instruct API_KEY=... ./vllm-server.sh
# vLLM reads safetensors model folders (GGUF support is experimental); in that case set
# llm_tokenizer to nothing on the UI host: rag counts tokens through vLLM's /tokenize endpoint.
set -eu
: "${MODEL:?set MODEL to a model folder}"
: "${API_KEY:?set API_KEY; clients send it as RAG_LLM_API_KEY}"
export VLLM_API_KEY="$API_KEY"
exec vllm serve "$MODEL" \
    --served-model-name "${MODEL_ALIAS:-$(basename "$MODEL")}" \
    --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
    --max-model-len "${N_CTX:-4096}" \
    --seed 7
