# drportal's one image: the web UI (uvicorn), the Celery worker and beat, migrations and
# the lab. docker-compose.yml runs it; README, "Deployment", explains the commands.
# bookworm: the lab reads domain configs with Xen 4.17's libxlutil (hosts/lab/xlutil.py),
# which Debian 12 ships as libxenmisc4.17; the portal itself never loads it.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DRPORTAL_VAR_DIR=/data STATIC_ROOT=/app/staticfiles
WORKDIR /app
# The PDF report's libraries; drportal's own user (uid 10001: give it the SSH key file).
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core libxenmisc4.17 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home drportal \
    && install -d -o drportal -g drportal /data /data/lab /data/beat
COPY pyproject.toml requirements.lock README.md ./
COPY drportal drportal
COPY hosts hosts
COPY failover failover
RUN pip install --no-cache-dir -c requirements.lock .
COPY . .
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
USER drportal
EXPOSE 8000
CMD ["uvicorn", "drportal.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "5"]
