#!/usr/bin/env python3
"""The client matrix in the README, from the results the client tests wrote.

Each test binary tests/client_<family>.rs appends one JSON line per capability it exercised to
target/client-matrix/<client>.jsonl: {"client", "version", "capability", "pass", "supported"?}. This prints the
markdown table of the newest result per client and capability, and with --check compares it with the table
between the README's `<!-- client-matrix -->` markers (exit 1 when they differ); --write puts it there.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "target" / "client-matrix"
README = ROOT / "README.md"
BEGIN, END = "<!-- client-matrix:begin -->", "<!-- client-matrix:end -->"
COLUMNS = [
    ("produce", "produce (acks=all)"),
    ("idempotent", "idempotent producer"),
    ("consume-group", "consumer group, commits"),
    ("kip848", "KIP-848 group"),
    ("tenant", "SASL tenant"),
    ("switch", "switch mid-stream"),
    ("transactions", "transactions (no switch)"),
    ("idempotent-switch", "idempotent producer, 4 switches"),
    ("transactions-switch", "transactions, 4 switches"),
]
ORDER = ["java", "confluent-kafka", "kafka-python", "franz-go", "kafkajs"]


def newest_cells():
    cells, versions = {}, {}
    for path in sorted(RESULTS.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                cell = json.loads(line)
            except json.JSONDecodeError:
                continue
            client, capability = cell.get("client"), cell.get("capability")
            if not client or not capability:
                continue
            cells[(client, capability)] = cell
            version = cell.get("version", "?")
            if cell.get("librdkafka"):
                version += f" (librdkafka {cell['librdkafka']})"
            versions[client] = version
    return cells, versions


def mark(cell):
    if cell is None:
        return "not tested"
    if cell.get("supported") is False:
        return "not in client"
    return "pass" if cell.get("pass") else "**FAIL**"


def table():
    cells, versions = newest_cells()
    clients = sorted(versions, key=lambda c: (ORDER.index(c) if c in ORDER else len(ORDER), c))
    lines = ["| client | version | " + " | ".join(title for _, title in COLUMNS) + " |"]
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    for client in clients:
        row = [mark(cells.get((client, key))) for key, _ in COLUMNS]
        lines.append(f"| {client} | {versions[client]} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def readme_parts():
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start], text[start:end].strip("\n"), text[end:]


def main():
    generated = table()
    if "--write" in sys.argv:
        head, _, tail = readme_parts()
        README.write_text(f"{head}\n{generated}\n{tail}")
        return 0
    if "--check" in sys.argv:
        _, current, _ = readme_parts()
        if current != generated:
            print("README's client matrix differs from this run's results; this run:\n" + generated)
            print("(scripts/client-matrix.py --write puts it in the README)")
            return 1
        print("README's client matrix matches this run's results")
        return 0
    print(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
