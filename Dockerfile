# gatehouse container image (docs/deploy.md#container).
# Build: docker build -t gatehouse .   Run: read-only root filesystem, state in a volume:
#   docker run --read-only --cap-drop ALL -v gatehouse-state:/var/lib/gatehouse \
#     -v /etc/gatehouse:/etc/gatehouse:ro -p 443:8443 gatehouse
# The runtime image has no shell and no package manager; it runs as UID 65532 (nonroot).

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off: `prepare` would build before the sources are here; the native SQLite
# binding is built explicitly below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
COPY examples ./examples
COPY docs ./docs
RUN npm rebuild better-sqlite3 \
 && npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf src dist/testing dist/integration \
 && find dist -name '*.test.js' -delete

# Distroless: Node.js and its libraries only. Debian 12 like the build stage, so the
# native binding matches its glibc.
FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/examples ./examples
COPY --from=build /src/docs ./docs
# Writable state (SQLite stores, audit spool) lives only here; mount a volume.
VOLUME ["/var/lib/gatehouse"]
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/gatehouse.js"]
CMD ["run", "--config", "/etc/gatehouse/gatehouse.yaml"]
