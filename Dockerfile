# The harness and the Celery app under test, installed from this checkout.
# Used by docker-compose.yml (workers per pool, the main job) and by the pytest-celery container tier
# (tests/container: one worker container per pool). Python 3.11, the project's minimum.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# redis-server lets `python -m bench run` and pytest start their own private Redis inside a container
# when no --broker-url is given (the harness never needs it when one is).
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*

# Celery warns when a worker runs as root; run everything as an ordinary user.
RUN useradd --create-home --uid 1000 bench

WORKDIR /app
COPY . .
# The test extra as well, so `docker compose run --rm bench python -m pytest ...` works in the image, and
# the green extra (gevent, eventlet) for the compose file's gevent and eventlet workers.
RUN pip install '.[test,green]' \
    && mkdir -p /app/reports \
    && chown -R bench:bench /app

USER bench

# `-A tasks` is importable from /app (the working directory) as well as from site-packages.
ENV CELERY_BROKER_URL=redis://redis:6379/0 \
    CELERY_RESULT_BACKEND=redis://redis:6379/0

CMD ["celery", "-A", "tasks", "worker", "--pool=solo", "--loglevel=INFO"]
