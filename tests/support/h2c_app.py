"""A tiny ASGI app for hypercorn, which accepts HTTP/2 by `Upgrade: h2c`:
it answers every request with the HTTP version it arrived over."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"hello over HTTP/{scope['http_version']}\n".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
