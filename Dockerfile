# syntax=docker/dockerfile:1.7
# Herald's images: one recipe, one target per service (api, worker, operator, simulator).
#   docker build --target worker --build-arg VERSION=$(git rev-parse --short HEAD) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t herald/worker:<sha> .
# The migration Job runs the api image with `node dist/scripts/migrate.js`.
# The final stage's layout (WORKDIR, USER, the COPY lines, each target's CMD) is read by
# platform/image-layout.ts: the built-tree test and the local node's images follow it.

# NODE_IMAGE: Node 24 on Debian bookworm slim, pinned by digest (the multi-arch index), so a
# rebuild of the same commit gets the same base. Refresh deliberately:
#   docker buildx imagetools inspect node:24-bookworm-slim   (take the index digest)
# and keep the tag beside it for people; the digest is what is pulled.
ARG NODE_IMAGE=node:24.11.1-bookworm-slim@sha256:48abc13a19400ca3985071e287bd405a1d99306770eb81d61202fb6b65cf0b57

# --- build: every dependency, tsc to dist/ ------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
# the sources .dockerignore lets through (tsc follows the entrypoints' imports)
COPY . ./
RUN npm run build

# --- production dependencies only (no tsx, no typescript, no vitest) ----------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime: root-owned files the non-root user can read but not change ------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/herald-dev/herald
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="herald" \
      org.opencontainers.image.licenses="UNLICENSED"
ENV NODE_ENV=production \
    HERALD_VERSION=${VERSION} \
    HERALD_DATA_DIR=/tmp/herald
WORKDIR /app
COPY package.json ./package.json
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# uid 1000 ("node" in the base image): the pods' runAsUser
USER 1000:1000

FROM runtime AS api
CMD ["node", "dist/services/api/main.js"]

FROM runtime AS worker
CMD ["node", "dist/services/worker/main.js"]

FROM runtime AS operator
CMD ["node", "dist/operator/main.js"]

FROM runtime AS simulator
CMD ["node", "dist/services/simulator/main.js"]
