# The avtomatika-bot CLI's echo bot: answers every message with what it said.
#   Polling:  runyard bot start echo-bot --simple examples/bots/echo_bot.py -r "aiogram>=3.0" -e BOT_TOKEN
#   Webhook:  runyard bot start echo-bot --simple examples/bots/echo_bot.py -e WEBHOOK_PORT=8080 --webhook 8080
#             then give Telegram the URL `runyard bot webhook echo-bot` prints (docs/bots.md).
# In webhook mode it needs no library and no token: it answers each update Telegram POSTs with
# the sendMessage call itself, in the webhook's answer (Telegram's "reply in the response").
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Updates(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        try:
            update = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        message = update.get("message") or {}
        answer = {}
        if "text" in message:
            answer = {
                "method": "sendMessage",
                "chat_id": message["chat"]["id"],
                "text": f"You said: {message['text']}",
            }
        print(f"update {update.get('update_id')} on {self.path}", flush=True)
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def polling():
    import asyncio

    from aiogram import Bot, Dispatcher, types

    bot = Bot(token=os.environ["BOT_TOKEN"])
    dp = Dispatcher()

    @dp.message()
    async def echo(message: types.Message):
        await message.answer(f"You said: {message.text}")

    asyncio.run(dp.start_polling(bot))


if os.environ.get("WEBHOOK_PORT"):
    port = int(os.environ["WEBHOOK_PORT"])
    print(f"echo bot taking webhooks on port {port}", flush=True)
    HTTPServer(("0.0.0.0", port), Updates).serve_forever()
else:
    polling()
