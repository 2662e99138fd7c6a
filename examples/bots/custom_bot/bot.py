# Replies to a voice message with its length, measured by ffmpeg's ffprobe (installed by the Dockerfile).
import asyncio
import json
import os
import subprocess
import tempfile

from aiogram import Bot, Dispatcher, F, types

bot = Bot(token=os.environ["BOT_TOKEN"])
dp = Dispatcher()


@dp.message(F.voice)
async def voice(message: types.Message):
    # /tmp is the one writable place in the container.
    with tempfile.NamedTemporaryFile(dir="/tmp", suffix=".ogg") as file:
        await bot.download(message.voice, destination=file.name)
        probe = subprocess.run(
            ["ffprobe", "-v", "quiet", "-print_format", "json", "-show_format", file.name],
            capture_output=True,
            check=True,
            text=True,
        )
    seconds = float(json.loads(probe.stdout)["format"]["duration"])
    await message.answer(f"{seconds:.1f} seconds")


@dp.message()
async def other(message: types.Message):
    await message.answer("Send me a voice message.")


asyncio.run(dp.start_polling(bot))
