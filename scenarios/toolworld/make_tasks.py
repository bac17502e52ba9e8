"""Generate the toolworld task files from the API itself, so every gold answer is computed.

    python scenarios/toolworld/make_tasks.py            # rewrites the .jsonl files next to it
    python scenarios/toolworld/make_tasks.py --out DIR  # somewhere else (the tests compare)

Writes ``weather.jsonl``, ``stocks.jsonl``, ``places.jsonl`` (one domain each; questions come
from a few templates, each asked several times about other cities, companies or places and in
other words, as in EcoAssistant's datasets), ``mixed.jsonl`` (all of them, interleaved) and
``reference.jsonl`` (``{"id", "template", "code"}``: a short script that answers each task
with the API — the tests run it in the sandbox and score its output with the task's check).

Deterministic: entities are picked by SHA-256 hashes, never by ``random``, and the output is
byte-identical on every run. A numeric gold answer is only kept when no other number its
answer is likely to print near it (the day's other readings, the question's own numbers, the
same template's other answers) falls within the check's tolerance, so checks discriminate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TOOLWORLD_API_KEY", "make-tasks")

import toolworld as tw  # noqa: E402  (found through the path set above)

DOMAINS = ("weather", "stocks", "places")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class Task:
    id: str
    query: str
    check: dict[str, Any]
    code: str
    group: str
    time_sensitive: bool = False
    decoys: list[float] = field(default_factory=list)  # never written: numbers to stay clear of
    gold: float | None = None  # the numeric answer a python check looks for
    template: str = ""  # set when assembled: "weather/temp", ...

    def line(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "query": self.query, "check": self.check}
        data["group"] = self.group
        if self.time_sensitive:
            data["time_sensitive"] = True
        return data


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def _pick(options: list[Any] | tuple[Any, ...], *parts: object) -> Any:
    return options[_hash(*parts) % len(options)]


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def _long(day: dt.date) -> str:
    return f"{day:%B} {day.day}, {day.year}"


def _date_forms(day: dt.date) -> list[str]:
    """The ways an answer may write a date: ISO, "March 15", "15 March", "March 15th"."""
    suffix = "th" if 11 <= day.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    return [
        day.isoformat(),
        f"{day:%B} {day.day}",
        f"{day.day} {day:%B}",
        f"{day:%B} {day.day}{suffix}",
    ]


def _time_forms(hhmm: str) -> list[str]:
    """The ways an answer may write a closing time: "22:00", "10 PM", "10:00 PM", "10pm"."""
    hour = int(hhmm[:2]) % 24
    twelve, half = (hour % 12) or 12, "AM" if hour < 12 else "PM"
    forms = [hhmm, f"{twelve} {half}", f"{twelve}:00 {half}", f"{twelve}{half.lower()}"]
    forms += [f"{twelve}:00{half.lower()}", f"{twelve} {half[0].lower()}.m."]
    if hour == 0:
        forms += ["midnight", "24:00"]
    return forms


def _number(value: float, tolerance: float) -> dict[str, Any]:
    return {"number": value, "tolerance": tolerance, "pick": "any"}


def _code(*lines: str) -> str:
    return "\n".join(["import toolworld", "", *lines]) + "\n"


# --- weather ---------------------------------------------------------------------------------

CITIES = sorted(tw._CLIMATES)
TOMORROW = tw.TODAY + dt.timedelta(days=1)


def _past_day(*parts: object) -> dt.date:
    return tw.TODAY - dt.timedelta(days=1 + _hash(*parts) % 400)


def _readings(w: dict[str, Any]) -> list[float]:
    keys = ("temperature_c", "high_c", "low_c", "humidity", "wind_kph", "precipitation_mm")
    return [float(w[k]) for k in keys]


def weather_templates() -> dict[str, tuple[int, Callable[[int], Task | None]]]:
    def temp_tomorrow(n: int) -> Task:
        city = _pick(CITIES, "temp", n)
        query = _pick(
            [
                "What will the temperature be in {c} tomorrow?",
                "How warm will it be in {c} tomorrow?",
                "What is tomorrow's average temperature in {c}, in °C?",
                "Tell me the expected temperature in {c} for tomorrow.",
            ],
            "temp-q",
            n,
        ).format(c=city)
        w = tw.get_weather(city, "tomorrow")
        return Task(
            f"temp-tomorrow-{_slug(city)}",
            query,
            _number(w["temperature_c"], 0.05),
            _code(f'print(toolworld.get_weather("{city}", "tomorrow")["temperature_c"])'),
            "weather",
            time_sensitive=True,
            decoys=_readings(w)[1:]
            + [
                float(x["temperature_c"])
                for x in (tw.get_weather(city), *tw.get_forecast(city, 7)[1:])
            ],
        )

    def condition_on(n: int) -> Task:
        city, day = _pick(CITIES, "cond", n), _past_day("cond-day", n)
        query = _pick(
            [
                "What was the weather like in {c} on {d}?",
                "Describe the weather conditions in {c} on {d}.",
                "What were the weather conditions in {c} on {d}?",
            ],
            "cond-q",
            n,
        ).format(c=city, d=_long(day))
        w = tw.get_weather(city, day)
        return Task(
            f"condition-{_slug(city)}-{day}",
            query,
            {"contains": w["condition"]},
            _code(f'print(toolworld.get_weather("{city}", "{day}")["condition"])'),
            "weather",
        )

    def humidity_today(n: int) -> Task:
        city = _pick(CITIES, "hum", n)
        query = _pick(
            [
                "What is the humidity in {c} right now?",
                "How humid is it in {c} today?",
                "What's today's relative humidity in {c}?",
            ],
            "hum-q",
            n,
        ).format(c=city)
        w = tw.get_weather(city, "today")
        return Task(
            f"humidity-today-{_slug(city)}",
            query,
            _number(w["humidity"], 0.5),
            _code(f'print(toolworld.get_weather("{city}", "today")["humidity"])'),
            "weather",
            time_sensitive=True,
            decoys=[r for i, r in enumerate(_readings(w)) if i != 3],
        )

    def wind_tomorrow(n: int) -> Task:
        city = _pick(CITIES, "wind", n)
        query = _pick(
            [
                "How strong will the wind be in {c} tomorrow, in km/h?",
                "What wind speed is forecast for {c} tomorrow?",
            ],
            "wind-q",
            n,
        ).format(c=city)
        w = tw.get_weather(city, "tomorrow")
        return Task(
            f"wind-tomorrow-{_slug(city)}",
            query,
            _number(w["wind_kph"], 0.05),
            _code(f'print(toolworld.get_weather("{city}", "tomorrow")["wind_kph"])'),
            "weather",
            time_sensitive=True,
            decoys=[r for i, r in enumerate(_readings(w)) if i != 4],
        )

    def average_high(n: int) -> Task:
        city, days = _pick(CITIES, "avg", n), _pick([3, 5, 7], "avg-days", n)
        query = _pick(
            [
                "What is the average daily high temperature in {c} over the next {k} days?",
                "Averaged over the next {k} days, how high will daytime temperatures get in {c}?",
            ],
            "avg-q",
            n,
        ).format(c=city, k=days)
        forecast = tw.get_forecast(city, days)
        gold = round(sum(float(d["high_c"]) for d in forecast) / days, 2)
        return Task(
            f"average-high-{_slug(city)}-{days}d",
            query,
            _number(gold, 0.06),
            _code(
                f'days = toolworld.get_forecast("{city}", {days})',
                'print(round(sum(d["high_c"] for d in days) / len(days), 2))',
            ),
            "weather",
            time_sensitive=True,
            decoys=[float(d[k]) for d in forecast for k in ("high_c", "temperature_c")],
        )

    def rain_on(n: int) -> Task | None:
        city, day = _pick(CITIES, "rain", n), _past_day("rain-day", n)
        w = tw.get_weather(city, day)
        if not w["precipitation_mm"]:
            return None
        query = _pick(
            [
                "How much precipitation, in mm, fell in {c} on {d}?",
                "How many millimetres of rain or snow did {c} get on {d}?",
            ],
            "rain-q",
            n,
        ).format(c=city, d=_long(day))
        return Task(
            f"precipitation-{_slug(city)}-{day}",
            query,
            _number(w["precipitation_mm"], 0.05),
            _code(f'print(toolworld.get_weather("{city}", "{day}")["precipitation_mm"])'),
            "weather",
            decoys=_readings(w)[:5],
        )

    def warmest_day(n: int) -> Task | None:
        city = _pick(CITIES, "warm", n)
        week = tw.get_forecast(city, 7)
        by_high = sorted(week, key=lambda d: -float(d["high_c"]))
        by_mean = max(week, key=lambda d: float(d["temperature_c"]))
        if (
            by_high[0] is not by_mean
            or float(by_high[0]["high_c"]) - float(by_high[1]["high_c"]) < 0.3
        ):
            return None  # "warmest" must not depend on how it is read
        day = dt.date.fromisoformat(str(by_high[0]["date"]))
        query = _pick(
            [
                "Which of the next 7 days will be the warmest in {c}?",
                "On which day this coming week will {c} see its highest temperature?",
            ],
            "warm-q",
            n,
        ).format(c=city)
        return Task(
            f"warmest-day-{_slug(city)}",
            query,
            {"contains": _date_forms(day)},
            _code(
                f'week = toolworld.get_forecast("{city}", 7)',
                'print(max(week, key=lambda d: d["high_c"])["date"])',
            ),
            "weather",
            time_sensitive=True,
        )

    return {
        "temp": (5, temp_tomorrow),
        "condition": (4, condition_on),
        "humidity": (4, humidity_today),
        "wind": (3, wind_tomorrow),
        "average": (3, average_high),
        "rain": (3, rain_on),
        "warmest": (3, warmest_day),
    }


# --- stocks ----------------------------------------------------------------------------------

SYMBOLS = sorted(tw._COMPANIES)
TRADING_DAYS = tw._trading_days()
MONTHS = sorted({(d.year, d.month) for d in TRADING_DAYS if d < dt.date(2025, 3, 1)})


def _company(symbol: str) -> str:
    return tw._COMPANIES[symbol][0]


def _ohlc(row: dict[str, Any]) -> list[float]:
    return [float(row[k]) for k in ("open", "high", "low", "close")]


def stock_templates() -> dict[str, tuple[int, Callable[[int], Task | None]]]:
    def price_on(field_: str, phrasing: list[str]) -> Callable[[int], Task]:
        def make(n: int) -> Task:
            symbol, day = _pick(SYMBOLS, field_, n), _pick(TRADING_DAYS, field_, "day", n)
            name = _pick(
                [_company(symbol), f"{_company(symbol)} ({symbol})", symbol], "n", field_, n
            )
            query = _pick(phrasing, field_, "q", n).format(
                c=name, d=_pick([_long(day), day.isoformat()], "d", field_, n)
            )
            row = tw.get_stock_price(symbol, day)
            return Task(
                f"{field_}-{symbol.lower()}-{day}",
                query,
                _number(row[field_], 0.005),
                _code(f'print(toolworld.get_stock_price("{symbol}", "{day}")["{field_}"])'),
                "stocks",
                decoys=[
                    v
                    for k, v in zip(("open", "high", "low", "close"), _ohlc(row), strict=True)
                    if k != field_
                ],
            )

        return make

    def close_yesterday(n: int) -> Task:
        symbol = _pick(SYMBOLS, "yday", n)
        query = _pick(
            [
                "How much did {c}'s stock close at yesterday?",
                "What was yesterday's closing price of {c}?",
            ],
            "yday-q",
            n,
        ).format(c=_company(symbol))
        row = tw.get_stock_price(symbol, "yesterday")
        return Task(
            f"close-yesterday-{symbol.lower()}",
            query,
            _number(row["close"], 0.005),
            _code(f'print(toolworld.get_stock_price("{symbol}", "yesterday")["close"])'),
            "stocks",
            time_sensitive=True,
            decoys=_ohlc(row)[:3],
        )

    def change(n: int) -> Task:
        symbol = _pick(SYMBOLS, "chg", n)
        first = _pick(TRADING_DAYS[:-30], "chg-1", n)
        last = TRADING_DAYS[TRADING_DAYS.index(first) + 5 + _hash("chg-2", n) % 25]
        a, b = (float(tw.get_stock_price(symbol, d)["close"]) for d in (first, last))
        gold = round(100.0 * (b - a) / a, 2)
        query = _pick(
            [
                "By what percentage did {c}'s stock price change from the close on {a}"
                " to the close on {b}?",
                "What was the percent change in {c}'s closing price between {a} and {b}?",
            ],
            "chg-q",
            n,
        ).format(c=_company(symbol), a=_long(first), b=_long(last))
        check = (
            "def check(answer):\n"
            "    import re\n"
            "    for token in re.findall(r'\\d+(?:\\.\\d+)?', answer.replace(',', '')):\n"
            f"        if abs(float(token) - {abs(gold)}) <= 0.05:\n"
            "            return True\n"
            "    return False\n"
        )
        return Task(
            f"pct-change-{symbol.lower()}-{first}-{last}",
            query,
            {"python": check},
            _code(
                f'a = toolworld.get_stock_price("{symbol}", "{first}")["close"]',
                f'b = toolworld.get_stock_price("{symbol}", "{last}")["close"]',
                "print(round(100 * (b - a) / a, 2))",
            ),
            "stocks",
            decoys=[a, b],
            gold=abs(gold),
        )

    def monthly_average(n: int) -> Task:
        symbol, (year, month) = _pick(SYMBOLS, "avg", n), _pick(MONTHS, "avg-m", n)
        start = dt.date(year, month, 1)
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        rows = tw.get_price_history(symbol, start, end)
        gold = round(sum(float(r["close"]) for r in rows) / len(rows), 2)
        query = _pick(
            [
                "What was the average closing price of {c} in {m}?",
                "Average {c}'s daily closing prices over {m}: what do you get?",
            ],
            "avg-q",
            n,
        ).format(c=_company(symbol), m=f"{start:%B %Y}")
        return Task(
            f"average-close-{symbol.lower()}-{start:%Y-%m}",
            query,
            _number(gold, 0.01),
            _code(
                f'rows = toolworld.get_price_history("{symbol}", "{start}", "{end}")',
                'print(round(sum(r["close"] for r in rows) / len(rows), 2))',
            ),
            "stocks",
            decoys=[float(r["close"]) for r in rows],
        )

    def volume_on(n: int) -> Task:
        symbol, day = _pick(SYMBOLS, "vol", n), _pick(TRADING_DAYS, "vol-day", n)
        query = _pick(
            [
                "How many shares of {c} were traded on {d}?",
                "What was the trading volume of {c} on {d}?",
            ],
            "vol-q",
            n,
        ).format(c=_company(symbol), d=_long(day))
        row = tw.get_stock_price(symbol, day)
        return Task(
            f"volume-{symbol.lower()}-{day}",
            query,
            _number(row["volume"], 0.5),
            _code(f'print(toolworld.get_stock_price("{symbol}", "{day}")["volume"])'),
            "stocks",
        )

    def best_day(n: int) -> Task | None:
        symbol, (year, month) = _pick(SYMBOLS, "best", n), _pick(MONTHS, "best-m", n)
        start = dt.date(year, month, 1)
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        rows = sorted(tw.get_price_history(symbol, start, end), key=lambda r: -float(r["close"]))
        if rows[0]["close"] == rows[1]["close"]:
            return None
        query = _pick(
            [
                "On which trading day in {m} did {c} have its highest closing price?",
                "When in {m} did {c} stock close highest?",
            ],
            "best-q",
            n,
        ).format(c=_company(symbol), m=f"{start:%B %Y}")
        return Task(
            f"best-day-{symbol.lower()}-{start:%Y-%m}",
            query,
            {"contains": _date_forms(dt.date.fromisoformat(str(rows[0]["date"])))},
            _code(
                f'rows = toolworld.get_price_history("{symbol}", "{start}", "{end}")',
                'print(max(rows, key=lambda r: r["close"])["date"])',
            ),
            "stocks",
        )

    return {
        "close": (
            5,
            price_on(
                "close",
                [
                    "What was the closing price of {c} on {d}?",
                    "Please look up the close price of {c} stock on {d}.",
                    "How much did {c} close at on {d}?",
                ],
            ),
        ),
        "open": (
            3,
            price_on(
                "open",
                ["What was the opening price of {c} on {d}?", "At what price did {c} open on {d}?"],
            ),
        ),
        "low": (
            3,
            price_on(
                "low",
                [
                    "Look up the lowest price of {c} stock on {d}.",
                    "What was {c}'s intraday low on {d}?",
                ],
            ),
        ),
        "yesterday": (3, close_yesterday),
        "change": (3, change),
        "average": (3, monthly_average),
        "volume": (3, volume_on),
        "best": (3, best_day),
    }


# --- places ----------------------------------------------------------------------------------

PLACES = list(tw._all_places().values())


def _in(city: str, **match: Any) -> list[dict[str, Any]]:
    found = [p for p in PLACES if p["city"] == city and all(p[k] == v for k, v in match.items())]
    return sorted(found, key=lambda p: (-float(p["rating"]), p["name"]))


def _named(kind: str, *parts: object) -> dict[str, Any]:
    place: dict[str, Any] = _pick([p for p in PLACES if p["kind"] == kind], *parts)
    return place


def place_templates() -> dict[str, tuple[int, Callable[[int], Task | None]]]:
    def best_cuisine(n: int) -> Task | None:
        city, cuisine = _pick(CITIES, "best", n), _pick(tw._CUISINES, "best-c", n)
        found = _in(city, kind="restaurant", cuisine=cuisine)
        if len(found) > 1 and found[0]["rating"] == found[1]["rating"]:
            return None
        query = _pick(
            [
                "What is the best-rated {k} restaurant in {c}?",
                "Find the top-rated {K} restaurant in {c}.",
                "Which {K} restaurant in {c} has the highest rating?",
            ],
            "best-q",
            n,
        ).format(k=cuisine, K=cuisine.capitalize(), c=city)
        return Task(
            f"best-{cuisine}-{_slug(city)}",
            query,
            {"contains": found[0]["name"]},
            _code(
                f'found = toolworld.search_places("{cuisine} restaurant", "{city}")',
                'print(found[0]["name"])',
            ),
            "places",
        )

    def highly_rated(n: int) -> Task | None:
        city, kind = (
            _pick(CITIES, "good", n),
            _pick(["cafe", "bar", "hotel", "bookstore"], "good-k", n),
        )
        found = [p for p in _in(city, kind=kind) if float(p["rating"]) >= 4.0]
        if not found:
            return None
        query = _pick(
            [
                "Can you suggest a {k} in {c} rated 4 stars or more?",
                "I'm looking for a well-reviewed {k} in {c} (rating at least 4). Any ideas?",
            ],
            "good-q",
            n,
        ).format(k=kind, c=city)
        return Task(
            f"good-{kind}-{_slug(city)}",
            query,
            {"contains": [p["name"] for p in found]},
            _code(
                f'found = toolworld.search_places("", "{city}", kind="{kind}", min_rating=4.0)',
                'print(found[0]["name"])',
            ),
            "places",
        )

    def details(field_: str, kinds: list[str], phrasing: list[str]) -> Callable[[int], Task | None]:
        def make(n: int) -> Task | None:
            place = _named(_pick(kinds, field_, "k", n), field_, n)
            if field_ == "closes" and place["open_24_hours"]:
                return None
            query = _pick(phrasing, field_, "q", n).format(p=place["name"], c=place["city"])
            value = place[field_]
            decoys: list[float] = []
            if field_ == "phone":
                check: dict[str, Any] = {"contains": value, "word": False}
            elif field_ == "closes":
                check = {"contains": _time_forms(value)}
            elif field_ == "address":
                value = place["address"].split(",")[0]
                check = {"contains": value}
            else:
                check = _number(value, 0.01)
                decoys = [float(place["price_level"] or 0), float(place["review_count"])]
                decoys += [float(x) for x in _NUMBER.findall(place["address"])]
            return Task(
                f"{field_}-{_slug(place['name'])}",
                query,
                check,
                _code(
                    f'found = toolworld.search_places("{place["name"]}", "{place["city"]}")',
                    f'print(toolworld.place_details(found[0]["place_id"])["{field_}"])'
                    if field_ != "address"
                    else 'print(found[0]["address"])',
                ),
                "places",
                decoys=decoys,
            )

        return make

    def pharmacy_24h(n: int) -> Task | None:
        city = _pick(CITIES, "24h", n)
        found = [p for p in _in(city, kind="pharmacy") if p["open_24_hours"]]
        if not found:
            return None
        query = _pick(
            [
                "I need a 24-hour pharmacy in {c}. Can you find one for me?",
                "Is there a pharmacy in {c} that is open around the clock? Name it.",
            ],
            "24h-q",
            n,
        ).format(c=city)
        return Task(
            f"pharmacy-24h-{_slug(city)}",
            query,
            {"contains": [p["name"] for p in found]},
            _code(
                f'found = toolworld.search_places("pharmacy", "{city}")',
                "print([p['name'] for p in found",
                '       if toolworld.place_details(p["place_id"])["open_24_hours"]][0])',
            ),
            "places",
        )

    def cheap_eats(n: int) -> Task | None:
        city = _pick(CITIES, "cheap", n)
        found = [p for p in _in(city, kind="restaurant") if p["price_level"] == 1]
        if not found or len(found) > 4:
            return None
        query = _pick(
            [
                "Recommend an inexpensive restaurant (price level 1) in {c}.",
                "Where can I eat cheaply in {c}? I want a restaurant with the lowest price level.",
            ],
            "cheap-q",
            n,
        ).format(c=city)
        return Task(
            f"cheap-restaurant-{_slug(city)}",
            query,
            {"contains": [p["name"] for p in found]},
            _code(
                f'found = toolworld.search_places("restaurant", "{city}")',
                'print([p["name"] for p in found if p["price_level"] == 1][0])',
            ),
            "places",
        )

    every = ["restaurant", "cafe", "bar", "museum", "bookstore", "gym", "bakery"]
    return {
        "best": (5, best_cuisine),
        "good": (3, highly_rated),
        "phone": (
            4,
            details(
                "phone",
                every,
                ["What is the phone number of {p} in {c}?", "How can I call {p} ({c})?"],
            ),
        ),
        "address": (
            3,
            details(
                "address", every, ["What is the address of {p} in {c}?", "Where is {p} in {c}?"]
            ),
        ),
        "closes": (
            3,
            details(
                "closes",
                ["restaurant", "cafe", "bar", "bookstore", "gym"],
                ["What time does {p} in {c} close?", "Until when is {p} ({c}) open today?"],
            ),
        ),
        "rating": (
            4,
            details(
                "rating",
                every,
                ["What rating does {p} in {c} have?", "How well rated is {p} in {c}?"],
            ),
        ),
        "pharmacy": (3, pharmacy_24h),
        "cheap": (3, cheap_eats),
    }


# --- assembling the files --------------------------------------------------------------------


def _clear(task: Task, taken: list[float]) -> bool:
    """Whether a numeric gold answer stays out of reach of every decoy (see the module doc)."""
    gold = _gold(task)
    if gold is None:
        return True
    tolerance = float(task.check.get("tolerance", 0.05))
    near = [*task.decoys, *taken, *(float(x) for x in _NUMBER.findall(task.query)), *_WEEK]
    near += [-x for x in near]  # "2025-03-13" reads as 2025, -3, -13
    return all(abs(gold - x) > 2 * tolerance for x in near)


# Numbers an answer about this week may print along the way (its dates).
_WEEK = [2025.0, 3.0, *(float(tw.TODAY.day + n) for n in range(-1, 8))]


def _gold(task: Task) -> float | None:
    return float(task.check["number"]) if "number" in task.check else task.gold


def domain_tasks(
    domain: str, templates: dict[str, tuple[int, Callable[[int], Task | None]]]
) -> list[Task]:
    tasks: dict[str, Task] = {}
    for template, (count, make) in templates.items():
        kept: list[Task] = []
        for n in range(1000):
            if len(kept) == count:
                break
            task = make(n)
            if task is None or task.id in tasks:
                continue
            golds = [g for g in map(_gold, kept) if g is not None]
            if _clear(task, golds):
                task.template = f"{domain}/{template}"
                kept.append(task)
                tasks[task.id] = task
        else:
            raise RuntimeError(f"could not find {count} tasks for {make}")
    # Interleave the templates, so similar questions recur through the run.
    return sorted(tasks.values(), key=lambda t: _hash("order", t.id))


def build() -> dict[str, list[Task]]:
    files = {
        "weather": domain_tasks("weather", weather_templates()),
        "stocks": domain_tasks("stocks", stock_templates()),
        "places": domain_tasks("places", place_templates()),
    }
    files["mixed"] = sorted(
        (t for d in DOMAINS for t in files[d]), key=lambda t: _hash("mixed", t.id)
    )
    return files


def write(out: Path) -> list[Path]:
    files = build()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, tasks in files.items():
        path = out / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps(t.line(), ensure_ascii=False) + "\n" for t in tasks),
            encoding="utf-8",
        )
        written.append(path)
    path = out / "reference.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": t.id, "template": t.template, "code": t.code}, ensure_ascii=False)
            + "\n"
            for d in DOMAINS
            for t in files[d]
        ),
        encoding="utf-8",
    )
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        lines = path.read_text(encoding="utf-8").count("\n")
        print(f"{path}: {lines} lines")


if __name__ == "__main__":
    main()
