from aiogram import Router, types
from aiogram.filters import Command

from utils import shout

router = Router()


@router.message(Command("start"))
async def start(message: types.Message):
    await message.answer("Hi! Send me text and I will shout it back.")


@router.message()
async def echo(message: types.Message):
    await message.answer(shout(message.text or ""))
