# syntax=docker/dockerfile:1
# One image for the Flotilla API and worker (docker-compose.yml picks the command).
# Node runs the TypeScript sources directly (type stripping): no build step, only
# the production dependencies. Keep NODE_VERSION in step with scripts/env.sh.
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-slim
ENV NODE_ENV=production \
    NODE_OPTIONS=--disable-warning=ExperimentalWarning \
    FLOTILLA_API_HOST=0.0.0.0 \
    FLOTILLA_API_PORT=8080
WORKDIR /app
# Code and dependencies belong to root and are read-only for the process, which runs as `node`.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY model ./model
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY api ./api
USER node
EXPOSE 8080
CMD ["node", "api/main.ts"]
