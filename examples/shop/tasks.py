"""The shop's own tasks."""

from decimal import Decimal

from examples.shop import app


@app.task
def order_total(items, discount_percent=0):
    """Total of ``[(unit_price, quantity), ...]`` after a percentage discount, as a string of cents."""
    total = sum(Decimal(str(price)) * quantity for price, quantity in items)
    total *= (100 - Decimal(str(discount_percent))) / 100
    return str(total.quantize(Decimal("0.01")))


@app.task(ignore_result=True)
def send_receipt(order_id, email):
    """Pretend to e-mail a receipt (routed to ``shop.email``); returns nothing worth storing."""
    return f"receipt for order {order_id} to {email}"
