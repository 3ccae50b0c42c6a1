# The seed's hello app (FastAPI), served by Gunicorn + UvicornWorker as the seed does, plus the I/O-bound route.
import asyncio

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root():
    return {"message": "Hello World"}


@app.get("/slow")
async def slow():
    await asyncio.sleep(0.05)
    return {"message": "Hello World"}
