#!/bin/sh
# The generation host, with llama-cpp-python's server (installed by `make install`:
# llama-cpp-python[server]). It serves one request at a time; others wait in its queue.
#   MODEL=/srv/models/qwen2.5-3b-instruct-q4_k_m.gguf API_KEY=... ./llama-cpp-python-server.sh
# API_KEY is read from the environment by the server (kept off the command line, where `ps` shows it).
set -eu
: "${MODEL:?set MODEL to a GGUF file}"
: "${API_KEY:?set API_KEY; clients send it as RAG_LLM_API_KEY}"
# Idle llama.cpp threads sleep instead of spinning. On a busy host (here: 2 cores, load 9) 200 tokens
# took 6 s with PASSIVE and 100-133 s with ACTIVE or with OpenMP's default. Set ACTIVE on a host
# reserved for generation, if it measures faster there.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "${PYTHON:-python3}" -m llama_cpp.server \
    --model "$MODEL" \
    --model_alias "${MODEL_ALIAS:-$(basename "$MODEL" .gguf)}" \
    --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
    --n_ctx "${N_CTX:-4096}" \
    --n_threads "${N_THREADS:-$(nproc)}" --n_threads_batch "${N_THREADS:-$(nproc)}" \
    --seed 7 \
    --interrupt_requests False
