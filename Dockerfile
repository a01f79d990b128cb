# syntax=docker/dockerfile:1.7
# Multi-stage: build the virtualenv with uv from the lockfile, ship a slim runtime without build tools or Node.

FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv==0.9.*
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY keeper ./keeper
COPY abis ./abis
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 keeper && useradd --system --uid 10001 --gid keeper --home /var/lib/keeper keeper \
 && mkdir -p /var/lib/keeper /etc/keeper && chown keeper:keeper /var/lib/keeper
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 KEEPER_STATE_DIR=/var/lib/keeper
USER keeper:keeper
WORKDIR /var/lib/keeper
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["keeper"]
CMD ["run", "--config", "/etc/keeper/keeper.toml"]

# Devnet image for deploy/compose.yaml only: keeper + the anvil node from npm. Not for production.
FROM python:3.11-slim AS devnet
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 KEEPER_ANVIL_BIN=/app/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
ENTRYPOINT ["keeper"]
CMD ["devnet", "--host", "0.0.0.0", "--port", "8545", "--config-out", "/shared/keeper.toml"]
