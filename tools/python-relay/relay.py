"""A model of the Python original's outbox relay, for `hule bench`'s "relay vs the Python original" scenario.

Written for the benchmark from section (d) and (e) of `shared/contracts/huleedu-reference.md`; it is not the
services' code. It does what `EventRelayWorker` does with its defaults, on the original's `event_outbox` table:

- the repository opens a SQLAlchemy `AsyncSession` per call (asyncpg driver, `expire_on_commit=False`,
  `autoflush=False`);
- `get_unpublished_events(limit=100)`: `SELECT … WHERE published_at IS NULL ORDER BY created_at LIMIT 100`;
- per row, one at a time: rebuild an `EventEnvelope[Any]` from `event_data` (a fresh event id and timestamp, `data`,
  `metadata`, `source_service` and `correlation_id` carried over, `headers` popped), `send_and_wait` it with an
  aiokafka producer as `KafkaBus` configures it (`acks="all"`, `enable_idempotence=True`, a JSON value serializer,
  the key UTF-8 encoded), then `mark_event_published`: `UPDATE … SET published_at = now() … RETURNING id`, committed;
- a non-empty fetch loops again at once.

The benchmark stops at the first empty fetch (every row was committed before it started) and prints one JSON line:
`{"published": N, "seconds": S}`. The database URL (URL form, read by asyncpg) comes from `HULE_PY_DSN`, never the
command line, where other users of the machine could read a password; the schema and the brokers are arguments.

Needs `sqlalchemy[asyncio]`, `asyncpg`, `aiokafka` and `pydantic` 2 (`scripts/setup.sh` installs them).
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Generic, Optional, TypeVar
from uuid import UUID, uuid4

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, DateTime, Integer, String, Text, select, update
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# The envelope as in tools/pydantic-parity/judge.py, written here again on purpose: `hule bench` embeds this file
# and runs it from a temporary directory, alone.
class EventEnvelope(BaseModel, Generic[T]):
    model_config = ConfigDict(populate_by_name=True)
    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    event_timestamp: datetime = Field(default_factory=_now)
    source_service: str
    schema_version: int = 1
    correlation_id: UUID = Field(default_factory=uuid4)
    data_schema_uri: Optional[str] = None
    data: T
    metadata: Optional[dict[str, Any]] = None


class Base(DeclarativeBase):
    pass


class EventOutbox(Base):
    """The shared model's columns (the relay under test may have added its own; the original ignores them)."""

    __tablename__ = "event_outbox"
    id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(String(255))
    aggregate_type: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(255))
    event_data: Mapped[dict] = mapped_column(JSON)
    event_key: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    topic: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)


class Repository:
    def __init__(self, engine):
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    async def get_unpublished_events(self, limit: int = 100) -> list[EventOutbox]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(EventOutbox)
                .where(EventOutbox.published_at.is_(None))
                .order_by(EventOutbox.created_at)
                .limit(limit)
            )
            return list(rows.scalars().all())

    async def mark_event_published(self, event_id: uuid.UUID) -> None:
        async with self.sessions() as session:
            result = await session.execute(
                update(EventOutbox)
                .where(EventOutbox.id == event_id)
                .values(published_at=_now())
                .returning(EventOutbox.id)
            )
            if result.scalar_one_or_none() is None:
                print(f"warning: outbox row {event_id} not found", file=sys.stderr)
            await session.commit()


async def publish_row(producer: AIOKafkaProducer, row: EventOutbox, service: str) -> None:
    stored = dict(row.event_data)
    headers = stored.pop("headers", None)
    envelope = EventEnvelope[Any](
        event_type=row.event_type,
        source_service=stored.get("source_service", service),
        correlation_id=stored.get("correlation_id", row.id),
        data=stored.get("data", stored),
        metadata=stored.get("metadata", {}),
    )
    await producer.send_and_wait(
        row.topic,
        envelope.model_dump(mode="json"),
        key=row.event_key.encode("utf-8") if row.event_key else None,
        headers=[(k, v.encode("utf-8")) for k, v in headers.items()] if headers else None,
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", required=True, help="the schema holding event_outbox")
    parser.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,…]")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--service", default="python_relay")
    args = parser.parse_args()
    dsn = os.environ.get("HULE_PY_DSN")
    if not dsn:
        print("relay.py: set HULE_PY_DSN to the database URL", file=sys.stderr)
        return 2
    # asyncpg reads the URL itself (sslmode, sslrootcert and the rest keep their meaning); SQLAlchemy only pools.
    engine = create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(dsn, server_settings={"search_path": args.schema}),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.brokers,
        client_id=args.service,
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    repository = Repository(engine)
    published = 0
    started = time.monotonic()
    try:
        while True:
            rows = await repository.get_unpublished_events(limit=args.batch_size)
            if not rows:
                break
            for row in rows:
                await publish_row(producer, row, args.service)
                await repository.mark_event_published(row.id)
                published += 1
    finally:
        seconds = time.monotonic() - started
        await producer.stop()
        await engine.dispose()
    print(json.dumps({"published": published, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
