"""Generate the demo job's CSV files, deterministically: ``python runs/demo-data/generate.py``.

The output is committed; rerunning this rewrites identical files (``random.Random(7)``). The data
is made up but shaped like a real blog export: Markdown author bios, WordPress-style HTML post
bodies (some with ``[caption]`` shortcodes), non-ASCII names, and fields holding commas, quotes
and line breaks so the CSV reader's quoting is exercised.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
AUTHORS = 40
POSTS = 300


def _choices(text: str) -> list[str]:
    return text.split("|")


FIRST = _choices(
    "Zoë|José|Łukasz|Søren|Ana María|Chloé|Björn|Małgorzata|Nguyễn Thị|Amélie|Jürgen|"
    "Siobhán|François|Dvořák|İlkay|Ramón|Mei|Aarav|Grace|Oliver|Priya|Tomás|Fatima|Kenji|"
    "Leah|Marcus|Noor|Ingrid|Samuel|Hannah|Yusuf|Elena|Kofi|Astrid|Diego|Sakura|Olu|Rosa"
)
LAST = _choices(
    "Østergaard|Núñez|Wójcik|Kierkegård|Ibáñez|Lefèvre|Ångström|Dąbrowska|Lan|Poulain|"
    "Müller|O'Connor|Dupont|Novák|Gündoğan|García|Chen|Sharma|Hopper|Bennett|Iyer|Herrera|"
    "Haddad|Tanaka|Goldberg|Reed|Rahman|Lindqvist|Adeyemi|Schmidt|Demir|Petrova|Mensah|"
    "Berg|Ortega"
)
ROLES = _choices(
    "backend engineer|product designer|data journalist|developer advocate|"
    "technical writer|engineering manager|SRE|front-end developer|researcher|"
    "content strategist"
)
TOPICS = _choices(
    "distributed systems|typography|accessibility|PostgreSQL|rate limiting|static sites|"
    "design tokens|observability|CSV files that lie|content migrations|search relevance|"
    "image pipelines|API versioning|on-call culture|i18n"
)
CATEGORIES = ["Engineering", "Design", "Product", "Culture", "Tutorials", "News"]
TITLE_PATTERNS = [
    "How we {verb} {topic}",
    "{topic}: what we learned the hard way",
    'Why "{topic}" is harder than it looks',
    "A field guide to {topic}",
    "{n} mistakes we made with {topic}",
    "{topic}, revisited",
    "Notes on {topic}, part {part}",
    "The quiet cost of {topic}",
    "Ask the team: {topic}?",
    "From zero to {topic} in a week",
]
VERBS = ["rebuilt", "tamed", "measured", "migrated", "rethought", "documented", "shipped"]
SENTENCES = [
    "We started with a spreadsheet and a lot of optimism.",
    "The first version worked, which was the problem.",
    "Nobody reads the error message until it is too late.",
    "Latency is a feature, whether you like it or not.",
    "It turns out the edge cases were most of the cases.",
    "We measured twice, then measured again after lunch.",
    "Every shortcut we took came back with interest.",
    "The data was older than most of the team.",
    "A good default beats a clever option.",
    "Naming things remained, as ever, the hard part.",
    "We wrote the runbook before we needed it, for once.",
    "Small batches, short feedback loops, fewer surprises.",
]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _bio(rng: random.Random, first: str, role: str) -> str:
    topics = rng.sample(TOPICS, 2)
    lines = [
        f"**{first}** is a {role} who writes about *{topics[0]}* and {topics[1]}.",
        "",
        f"- Favourite tool: `{rng.choice(['psql', 'curl', 'jq', 'vim', 'make'])}`",
        f"- Based in {rng.choice(['Lisbon', 'Kraków', 'Malmö', 'São Paulo', 'Osaka', 'Accra'])}",
    ]
    if rng.random() < 0.3:
        lines += ["", f'> "{rng.choice(SENTENCES)}"']
    if rng.random() < 0.2:
        lines += ["", f"More at [their site](https://example.org/{_slug(first)})."]
    return "\n".join(lines)


def _body(rng: random.Random, n: int) -> str:
    paragraphs = []
    for _ in range(rng.randint(2, 5)):
        text = " ".join(rng.sample(SENTENCES, rng.randint(2, 4)))
        if rng.random() < 0.25:
            text = text.replace("the", "<em>the</em>", 1)
        paragraphs.append(f"<p>{text}</p>")
    if rng.random() < 0.35:
        paragraphs.insert(1, f"<h2>{rng.choice(['Background', 'What changed', 'Results'])}</h2>")
    if rng.random() < 0.2:
        caption = rng.choice(["The old dashboard", "Before, after", "Our whiteboard, day 3"])
        paragraphs.insert(
            rng.randint(1, len(paragraphs)),
            f'[caption id="attachment_{n}" align="aligncenter" width="800"]'
            f'<img src="https://picsum.photos/seed/flowport-{n}/800/450" alt="{caption}" '
            f'width="800" height="450" /> {caption}[/caption]',
        )
    if rng.random() < 0.15:
        items = "".join(f"<li>{rng.choice(TOPICS)}</li>" for _ in range(3))
        paragraphs.append(f"<ul>{items}</ul>")
    return "\n".join(paragraphs)


def main() -> None:
    rng = random.Random(7)
    authors = []
    names = set()
    while len(authors) < AUTHORS:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        if name in names:
            continue
        names.add(name)
        n = len(authors) + 1
        handle = _slug(f"{first}{last}").replace("-", "")[:12] or f"author{n}"
        handle = "".join(c for c in handle if c.isascii()) + str(n)
        joined = date(2015, 1, 1) + timedelta(days=rng.randint(0, 9 * 365))
        authors.append(
            {
                "id": f"a{n:03d}",
                "name": name,
                "bio": _bio(rng, first, rng.choice(ROLES)),
                "twitter": f"https://twitter.com/{handle}",
                "email": f"{handle}@example.com",
                "joined": joined.isoformat(),
            }
        )

    posts = []
    start = datetime(2019, 1, 1, tzinfo=UTC)
    for n in range(1, POSTS + 1):
        topic = rng.choice(TOPICS)
        title = rng.choice(TITLE_PATTERNS).format(
            verb=rng.choice(VERBS), topic=topic, n=rng.randint(3, 12), part=rng.randint(1, 4)
        )
        title = title[0].upper() + title[1:]
        published = start + timedelta(minutes=rng.randint(0, 5 * 365 * 24 * 60))
        posts.append(
            {
                "id": f"p{n:04d}",
                "title": title,
                "author_id": rng.choice(authors)["id"],
                "body": _body(rng, n),
                "published_at": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "category": rng.choice(CATEGORIES),
                "featured_image": f"https://picsum.photos/seed/flowport-{n}/1200/630",
                "reading_time": str(rng.randint(2, 18)),
                "featured": "true" if rng.random() < 0.15 else "false",
            }
        )

    for name, rows in (("authors.csv", authors), ("posts.csv", posts)):
        with (HERE / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
