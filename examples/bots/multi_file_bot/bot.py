# A bot in three files, as in the avtomatika-bot CLI's FAQ:
#   cd examples/bots/multi_file_bot
#   runyard bot start my-bot --simple bot.py handlers.py utils.py --entrypoint bot.py \
#     -r "aiogram>=3.0" -e BOT_TOKEN
import asyncio
import logging

from aiogram import Bot, Dispatcher

from handlers import router
from utils import bot_token

logging.basicConfig(level=logging.INFO)


async def main() -> None:
    dp = Dispatcher()
    dp.include_router(router)
    await dp.start_polling(Bot(token=bot_token()))


asyncio.run(main())
