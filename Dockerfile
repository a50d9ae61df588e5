# GPU image: thinkbudget's server (and trainer) on vLLM's CUDA build, as the README installs
# it. With no --model it serves the shipped demo model.
#   docker build -t thinkbudget .
#   docker run --gpus all -p 8000:8000 -v ~/.cache/huggingface:/root/.cache/huggingface \
#       thinkbudget --model Qwen/Qwen3-8B
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/thinkbudget
COPY pyproject.toml README.md ./
COPY thinkbudget thinkbudget
COPY budget budget
COPY serve serve
COPY train_fusion train_fusion
COPY models models
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir '.[gpu,train]'
EXPOSE 8000
ENTRYPOINT ["/opt/venv/bin/thinkbudget", "serve", "--host", "0.0.0.0", "--port", "8000"]
