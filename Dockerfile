# GPU image: thinkbudget's server on vLLM's CUDA build. Installs exactly as the README does.
#   docker build -t thinkbudget .
#   docker run --gpus all -p 8000:8000 -v ~/.cache/huggingface:/root/.cache/huggingface \
#       thinkbudget --model Qwen/Qwen3-8B
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/thinkbudget
COPY pyproject.toml README.md ./
COPY budget budget
COPY serve serve
COPY train_fusion train_fusion
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir '.[gpu]'
EXPOSE 8000
ENTRYPOINT ["/opt/venv/bin/thinkbudget", "serve", "--host", "0.0.0.0", "--port", "8000"]
