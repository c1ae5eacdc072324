"""An example app that is not the seed's: a small shop with its own configuration module.

``python -m bench run --app examples.shop`` measures it; ``celery -A examples.shop worker`` runs it by
hand. Its settings differ from the seed's on purpose (compression, prefetch, late acks, a default
queue, routes), so a test can see that the harness keeps an app's own settings.
"""

from celery import Celery

app = Celery("shop")
app.config_from_object("examples.shop.settings")

__all__ = ["app"]
