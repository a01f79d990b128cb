# syntax=docker/dockerfile:1.7
# Multi-stage: uv builds the virtualenv from the lockfile; the LAST stage, `runtime`, is the default target
# (`docker build .`): python:3.11-slim with that virtualenv only — no compiler, no Node, a non-root user.
# `docker build --target devnet .` builds the devnet image (keeper + the anvil node from npm) that
# deploy/compose.yaml runs; it is for local stacks only, never for production.

FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv==0.9.*
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# Dependencies first (their own cached layer), exactly as locked: --frozen fails instead of re-resolving.
RUN uv sync --frozen --no-dev --no-install-project
COPY keeper ./keeper
COPY abis ./abis

# The runtime virtualenv: keeper installed as a wheel (the ABIs packaged inside it as keeper/_abis).
FROM build AS runtime-venv
RUN uv sync --frozen --no-dev --no-editable

# The devnet virtualenv: keeper installed editable from /app, so keeper/devnet/anvil.py finds the anvil
# binary of the image's own platform in /app/node_modules (no per-platform path in this file).
FROM build AS devnet-venv
RUN uv sync --frozen --no-dev

FROM python:3.11-slim AS devnet
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# @foundry-rs/anvil brings the binary of this platform (linux-amd64 or linux-arm64) as an optional dependency.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY --from=devnet-venv /opt/venv /opt/venv
COPY --from=devnet-venv /app/keeper ./keeper
COPY --from=devnet-venv /app/abis ./abis
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN keeper --help >/dev/null && python -c "from keeper.devnet.anvil import anvil_binary; print(anvil_binary())"
ENTRYPOINT ["keeper"]
CMD ["devnet", "--host", "0.0.0.0", "--port", "8545", "--config-out", "/shared/keeper.toml"]

# Production image (the default target). The metrics port is `metrics.port` (9108 by default); set it with
# KEEPER_METRICS__PORT, not only in the TOML file, so that the HEALTHCHECK below probes the same port.
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 keeper && useradd --system --uid 10001 --gid keeper --home /var/lib/keeper keeper \
 && mkdir -p /var/lib/keeper /etc/keeper && chown keeper:keeper /var/lib/keeper
COPY --from=runtime-venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 KEEPER_STATE_DIR=/var/lib/keeper
USER keeper:keeper
WORKDIR /var/lib/keeper
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('KEEPER_METRICS__PORT', '9108'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["keeper"]
CMD ["run", "--config", "/etc/keeper/keeper.toml"]
