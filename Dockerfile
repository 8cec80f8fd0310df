# The Archiver worker image, used by docker-compose.yml.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
# Bundled once here, from the code this image runs, so a restarted worker polls at once.
RUN npm run bundle -- /app/dist/workflow-bundle.js
ENV ARCHIVER_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js
# The image has no git, so bake the Worker Deployment build id in:
#   docker build --build-arg ARCHIVER_BUILD_ID=$(node -p "require('./package.json').version")-$(git rev-parse --short HEAD) .
# Left empty, workers fall back to the package version.
ARG ARCHIVER_BUILD_ID=""
ENV ARCHIVER_BUILD_ID=${ARCHIVER_BUILD_ID}
USER node
CMD ["node", "--import", "tsx", "workers/main.ts"]
