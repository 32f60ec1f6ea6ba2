# syntax=docker/dockerfile:1
# One image for the Flotilla API and worker (docker-compose.yml picks the command).
# Node runs the TypeScript sources directly (type stripping): no build step, only
# the production dependencies. Keep NODE_VERSION in step with scripts/env.sh.
ARG NODE_VERSION=24.21.0

# The worker renders Helm charts and Kustomize overlays with the real tools, built from the Go
# module proxy as scripts/build-binaries.sh builds them (keep the versions in step with scripts/env.sh).
FROM golang:1.26-bookworm AS tools
ARG HELM_VERSION=3.22.0
ARG KUSTOMIZE_VERSION=5.7.1
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}" helm.sh/helm/v3/cmd/helm@v${HELM_VERSION} \
 && CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" sigs.k8s.io/kustomize/kustomize/v5@v${KUSTOMIZE_VERSION}

FROM node:${NODE_VERSION}-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-slim
ENV NODE_ENV=production \
    NODE_OPTIONS=--disable-warning=ExperimentalWarning \
    FLOTILLA_API_HOST=0.0.0.0 \
    FLOTILLA_API_PORT=8080 \
    HELM_BIN=/usr/local/bin/helm \
    KUSTOMIZE_BIN=/usr/local/bin/kustomize
WORKDIR /app
# Code and dependencies belong to root and are read-only for the process, which runs as `node`.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=tools /out/helm /out/kustomize /usr/local/bin/
COPY package.json ./
COPY model ./model
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY api ./api
USER node
EXPOSE 8080
CMD ["node", "api/main.ts"]
