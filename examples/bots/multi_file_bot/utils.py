import os
import sys


def bot_token() -> str:
    token = os.environ.get("BOT_TOKEN", "")
    if not token:
        # Said on stderr and exit 1: `runyard bot start` reports the crash with this line.
        print("BOT_TOKEN is not set: start the bot with -e BOT_TOKEN=...", file=sys.stderr)
        sys.exit(1)
    return token


def shout(text: str) -> str:
    return text.upper() + "!"
