# licensebot: one `licensebot serve` process per container (README: "Deploying to production").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install . && rm -rf /src

# Never root. The working directory is where a `.env` would be read from and where key files
# would be created if LICENSEBOT_ENCRYPTION_KEYS / LICENSEBOT_AUDIT_KEYS were unset: set both
# (compose.yaml insists), since a container's files vanish with it and replicas must share keys.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin licensebot
USER licensebot
WORKDIR /home/licensebot

EXPOSE 3000

# /healthz answers 200 when the process and its database answer, 503 when the database does not
# (urllib raises on 503, so the check fails). python, because the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4)"]

# SIGTERM (docker stop) drains: in-flight requests answered, queued notifications delivered.
STOPSIGNAL SIGTERM
CMD ["licensebot", "serve", "--host", "0.0.0.0", "--port", "3000"]
