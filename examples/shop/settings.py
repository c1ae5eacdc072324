"""The shop's Celery configuration (``app.config_from_object('examples.shop.settings')``).

The broker and backend URLs are the usual environment-or-default pair; the harness points both at its
own broker when it runs the app (``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``).
"""

import os

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
result_backend = os.environ.get("CELERY_RESULT_BACKEND", "redis://localhost:6379/0")
broker_connection_retry_on_startup = True

imports = ("examples.shop.tasks",)

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_compression = "zlib"

task_default_queue = "shop"
task_routes = {"examples.shop.tasks.send_receipt": {"queue": "shop.email"}}

task_acks_late = True
worker_prefetch_multiplier = 1
result_expires = 3600
