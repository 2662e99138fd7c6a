# The avtomatika-bot CLI's echo bot: answers every message with what it said.
#   runyard bot start echo-bot --simple examples/bots/echo_bot.py -r "aiogram>=3.0" -e BOT_TOKEN
import asyncio
import os

from aiogram import Bot, Dispatcher, types

bot = Bot(token=os.environ["BOT_TOKEN"])
dp = Dispatcher()


@dp.message()
async def echo(message: types.Message):
    await message.answer(f"You said: {message.text}")


asyncio.run(dp.start_polling(bot))
