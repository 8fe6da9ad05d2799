# fleetprof service image: `fleetprof serve` on :4040 (ECS task; see docs/deploy.md).
# The explorer's assets (ui/, TypeScript) are built in a Node stage; the image serves them
# itself (nothing from a CDN).
FROM node:20-slim AS ui
WORKDIR /build/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/build.mjs ui/tsconfig.json ./
COPY ui/src ./src
RUN EXPLORER_OUT=/build/explorer npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLEETPROF_HOST=0.0.0.0

RUN groupadd --system --gid 10001 fleetprof \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin fleetprof

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY fleetprof ./fleetprof
COPY --from=ui /build/explorer ./fleetprof/explorer
COPY workers ./workers
# numba kernels are compiled here, once, into a cache the unprivileged user can read
ENV NUMBA_CACHE_DIR=/opt/fleetprof/numba-cache
RUN pip install -c constraints.txt . && rm -rf /src \
 && python -m fleetprof.warmup && chmod -R a+rX /opt/fleetprof

WORKDIR /tmp
USER 10001:10001
EXPOSE 4040
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4040/readyz', timeout=3)"]
CMD ["fleetprof", "serve"]
