"""Align two requests word by word: what they share, what only one says, and in which roles.

The verifier (:mod:`ecocascade.cache.verifier`) decides from these features whether one request's
answer serves the other. The parts:

- **Tokens** are Unicode words (``\\w`` without digits), numbers, and the arithmetic symbols
  (``+ * / ÷ ^ %`` and the multiplication sign, read as the words they stand for). Number
  words become digits first (``text2num``: "forty-two" → 42, "sixteenth" → 16th, in English,
  French, German, Spanish, Italian, Portuguese and Dutch).
- **Lemmas** come from ``simplemma`` (dictionary lemmatiser, 50+ languages), case-folded, so
  "spiders"/"spider", "wrote"/"write" and "Japan"/"japan" are one word; accents and ``ß`` fold
  too. The language is the one whose closed-class words the text uses most.
- **Closed-class words** — the finite part of each language's vocabulary — are sorted into what
  carries no meaning for the answer (articles, pronouns, auxiliaries, politeness: "I'm", "please",
  "can you tell me") and what does: negation, quantity ("a" vs "several", "all"), exclusion
  ("except"), comparison ("more"/"less"), question words (when/why) and prepositions, which mark
  roles: "**from** my phone **to** my laptop", "**in** 2011" vs "**since** 2011".
- Every other word is **open-class** (content) and must be aligned with the same lemma on the
  other side; what stays unaligned is a substitution (warmest/coldest, Japan/China, even/odd) or
  an addition. No synonym dictionary is available offline, so a synonym is an unaligned word too:
  the verifier pays for that in missed paraphrases ("tallest"/"highest"), not in wrong answers.
- **Order**: among aligned words (and numbers) that occur once on each side, the number of pairs
  in the opposite order catches reversals that keep every word ("Is a square a rectangle?" /
  "Is a rectangle a square?", "cm to inches" / "inches to cm", "Who did Germany beat?" / "Who
  beat Germany?"); a preposition attached to an aligned word that changes class is a role change.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["Alignment", "Analysed", "align", "analyse", "embedding_text"]

LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl", "ru")
_TEXT2NUM = {"en", "fr", "de", "es", "it", "pt", "nl"}

_TOKEN = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)*)(?P<ord>st|nd|rd|th|e|er|ème|º|ª|\.(?=\s))?(?![^\W\d_])"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<sym>[+*×/÷^%=<>])"
)
_SYMBOLS = {"+": "plus", "*": "times", "×": "times", "/": "divided", "÷": "divided",
            "^": "power", "%": "percent", "=": "", "<": "less", ">": "more"}  # fmt: skip


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- closed classes -------------------------------------------------------------------------
# Words that do not change the answer: articles, pronouns, auxiliaries, politeness, request
# verbs ("tell me", "give me"), elided forms ("l'", "d'", "dell'").
_FUNCTION = {
    "en": _words(
        "a an the another this that these those it it's i i'm me mine we us you yours "
        "he him she they them is are was were be been being am do does did done "
        "have has had having can could would should will shall may might must 's 'm 're 've 'll "
        "'d there here please kindly hey hi hello thanks thank quick question just actually "
        "really exactly tell give show let know want need like wonder wondering curious looking "
        "trying try find out say explain describe some one's whom whose whoever of for about "
        "so if then also too very quite me? again type kind sort way get got make made "
        "use used using"
    ),
    "fr": _words(
        "le la les l un une des du de d ce cet cette ces il elle ils elles je j me m moi tu te "
        "toi t nous vous on se s son sa ses leur leurs mon ma mes ton ta tes est sont était "
        "être a ai as avons avez ont avoir fait faire peut peux pouvez pourrais dis dire "
        "qu que qui quoi ce c y en et ou donc s'il plaît merci bien est-ce combien quel "
        "quelle où pourquoi font"
    ),
    "de": _words(
        "der die das den dem des ein eine einen einem einer eines ich mich mir du dich dir er "
        "sie es wir uns ihr euch mein meine dein deine sein seine ist sind war waren sein bin "
        "bist hat haben hatte wird werden wurde kann kannst können könnte bitte mal doch denn "
        "ja und oder auch sag sage nenne erkläre heißt gibt es wie viele welche welcher wer wo "
        "warum"
    ),
    "es": _words(
        "el la los las lo un una unos unas de del al y o que es son era fue ser estar está "
        "hay me mi mis tu tus su sus se le les nos yo tú él ella puedes puede podrías por "
        "favor dime dame explica escribe cómo cuántas cuántos cuánto cuál quién dónde tiene "
        "tienen"
    ),
    "it": _words(
        "il lo la i gli le un uno una l d di del della dello dei degli delle dell al alla "
        "allo ai agli alle all da dal dalla e o che è sono era mi ti si ci può puoi fa per "
        "favore ha hanno ho quante quanti quanto quale qual chi cosa come dove perché"
    ),
    "pt": _words(
        "o a os as um uma uns umas de do da dos das ao e ou que é são era foi ser me te se "
        "nos pode podes por favor tem têm quantas quantos qual quem onde como"
    ),
    "nl": _words(
        "de het een van en of is zijn was waren heeft hebben heb ik mij me je jij u we wij "
        "ze zij hij er wat dat die dit kan kunt mag graag alsjeblieft hoeveel welke wie waar "
        "waarom heeft"
    ),
    "ru": _words("и или а это этот эта что как является являются был была было быть же ли"),
}
# Words that change the answer and are compared as classes rather than as lemmas.
_NEGATION = _words(
    "not no never none nobody nothing neither nor without cannot n't "
    "ne pas jamais aucun aucune sans non "
    "nicht kein keine keinen keinem keiner nie niemals ohne "
    "no nunca ningún ninguna sin "
    "non mai nessun nessuna senza "
    "não nunca nenhum nenhuma sem "
    "niet geen nooit zonder "
    "не нет никогда без"
)
_CLASSES: dict[str, str] = {}
for _cls, _members in {
    # quantity
    "q:all": "all every each whole entire tous toutes tout chaque alle jeder jede jedes todo "
    "todos todas cada tutti tutte ogni todos todas alle elke все каждый",
    "q:several": "several many multiple various few some plusieurs quelques beaucoup mehrere "
    "einige viele varios varias algunos algunas muchos vari alcuni molti vários alguns "
    "muitos meerdere enkele veel несколько много",
    "q:only": "only just seulement uniquement nur solo sólo soltanto apenas alleen только",
    "q:any": "any",
    "q:both": "both beide ambos entrambi",
    # comparison
    "c:more": "more most greater plus mehr más più mais meer больше",
    "c:less": "less least fewer moins weniger menos meno minder меньше",
    # exclusion and scope
    "x:except": "except besides excluding apart aside other sauf excepté außer ausgenommen "
    "excepto salvo menos tranne eccetto exceto behalve кроме",
    "s:since": "since depuis seit desde dal sinds с",
    "s:until": "until till jusqu bis hasta fino até tot до",
    "s:before": "before prior avant vor antes prima voor",
    "s:after": "after afterwards après nach después dopo após na после",
    "s:above": "above dessus über oberhalb encima sopra acima boven над",
    "s:below": "below under beneath dessous unter unterhalb debajo sotto abaixo onder под",
    # verb particles: "zoom in" / "zoom out", "scroll up" / "scroll down"
    "d:out": "out",
    "d:up": "up",
    "d:down": "down",
    "d:off": "off_",
    "d:back": "back",
    "s:outside": "outside beyond dehors außerhalb fuera fuori fora buiten вне",
    "s:inside": "inside within dedans innerhalb dentro binnen внутри",
    # roles
    "r:to": "to into onto towards toward à au aux vers zu zum zur nach al hacia para alla ai naar",
    "r:from": "from off von vom aus desde_ da dal dalla dai van из от",
    "r:in": "in at on during dans en im am um en_ em no na nel nella op tijdens в на",
    "r:by": "by par durch por per door",
    "r:than": "than que als che do dan чем",
    "r:between": "between entre zwischen tra fra tussen между",
    "r:with": "with avec mit con com met с_",
    # whose: "my name" / "your name"
    "p:my": "my our mon ma mes notre nos mein meine meinen meinem unser mi mis nuestro "
    "nuestra mio mia miei mie nostro meu minha mijn ons onze мой моя моё мои наш",
    "p:your": "your votre vos ton ta tes dein deine deinen euer ihr tus vuestro tuo tua "
    "teu tua seu sua jouw uw твой твоя ваш",
    "p:his": "his her its their son sa ses leur leurs sein seine ihre su sus suo sua loro "
    "dele dela zijn haar hun его её их",
    # and / or
    "l:and": "and et und y e en_ и",
    "l:or": "or ou oder oppure или",
    # question words: what is asked for
    "w:what": "what which what's quel quelle quels quelles que qu quoi was welche welcher "
    "welches qué cuál cuáles cosa quale quali qual wat welke какой какая какое какие что",
    "w:who": "who whom who's qui wer quién quiénes chi quem wie кто",
    "w:whom": "wen wem кого кому",  # German/Russian mark the object on the question word
    "w:when": "when quand wann cuándo quando wanneer когда",
    "w:where": "where où wo dónde dove onde waar где",
    "w:why": "why pourquoi warum por_qué perché porque waarom почему",
    "w:how": "how comment wie_ cómo come como hoe как",
    "w:howmany": "combien wieviel wievielen cuántos cuántas cuánto quanti quante quanto "
    "quantos quantas quanta hoeveel сколько",
}.items():
    for _w in _members.split():
        _CLASSES.setdefault(_w.rstrip("_"), _cls)
_ROLE_PREFIXES = ("r:", "s:", "x:")
# An opening imperative that only asks for an answer: "List the planets" = "What are the
# planets", "Compute 17 * 23" = "What is 17 * 23". Only as the first word ("reverse a list").
_REQUEST_VERBS = _words(
    "list name give tell show explain describe write provide suggest compute calculate find "
    "get summarise summarize define state "
    "écris écrire donne dis explique cite calcule décris "
    "schreibe schreib nenne gib erkläre berechne beschreibe "
    "escribe dame di explica nombra calcula describe "
    "scrivi dammi dimmi spiega calcola elenca "
    "escreva diga explique calcule"
)


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # as written
    lemma: str  # case-folded lemma, digits for numbers, a class name for closed-class words
    kind: str  # "content", "number", "negation", "class", "function"
    role: str | None = None  # the preposition class governing this word, if any
    order: float = (
        0.0  # position for word order, possessives moved: "Kenya's language" = "language of Kenya"
    )
    free: bool = False  # a superlative: attributive or predicative, its position is free


@dataclass(frozen=True, slots=True)
class Analysed:
    text: str
    language: str
    tokens: tuple[Token, ...]

    @property
    def content(self) -> list[Token]:
        return [t for t in self.tokens if t.kind in ("content", "number")]

    def of_kind(self, kind: str) -> list[str]:
        return [t.lemma for t in self.tokens if t.kind == kind]

    @property
    def asks_for(self) -> str | None:
        """English "who/what" questions: "Who did X beat?" asks for the object, "Who beat X?"
        for the subject (do-support after the question word marks the object)."""
        if self.language != "en":
            return None
        for i, t in enumerate(self.tokens[:-1]):
            if t.lemma in ("w:who", "w:what"):
                after = self.tokens[i + 1]
                if after.lemma in ("do", "does", "did"):
                    return "w:object"
                if after.kind == "content" and after.text.casefold() == after.text and i == 0:
                    return "w:subject"
                return None
        return None

    @property
    def negated(self) -> bool:
        return any(t.kind == "negation" for t in self.tokens)  # "ne … pas" is one negation


@dataclass(frozen=True, slots=True)
class Alignment:
    """How two analysed requests line up; the verifier's features are read from this."""

    a: Analysed
    b: Analysed
    only_a: tuple[str, ...]  # content lemmas of a with no partner in b
    only_b: tuple[str, ...]
    numbers_a: tuple[str, ...]
    numbers_b: tuple[str, ...]
    inversions: tuple[tuple[str, str], ...]  # aligned pairs in opposite order
    swapped: bool  # the inversions are two words exchanging places, the rest in order
    role_changes: tuple[tuple[str, str, str], ...]  # (word, role in a, role in b)
    class_diff: tuple[str, ...]  # closed classes (quantity, scope, comparison) only one side has
    question_a: str | None
    question_b: str | None
    negation_differs: bool
    prefix_negation: tuple[str, str] | None  # ("legal", "illegal")
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def added_information(self) -> float:
        """Surprisal of the words only one side has, beyond the substituted ones: "capital
        *city*" adds little (a frequent word), "GDP *per capita*" adds a lot (``wordfreq``)."""
        longer, lang = (
            (self.only_a, self.a.language)
            if len(self.only_a) > len(self.only_b)
            else (self.only_b, self.b.language)
        )
        if not longer or len(self.only_a) == len(self.only_b):
            return 0.0
        info = sorted((_information(w, lang) for w in longer), reverse=True)
        return sum(info[: self.additions])

    @property
    def substitutions(self) -> int:
        return min(len(self.only_a), len(self.only_b))

    @property
    def additions(self) -> int:
        return abs(len(self.only_a) - len(self.only_b))

    @property
    def question_conflict(self) -> bool:
        """Both ask for a specific, different thing: "When was it built?" / "Why was it built?"
        ("What year…?" / "When…?" is not a conflict: "what" and "how" are generic)."""
        specific = {"w:who", "w:whom", "w:when", "w:where", "w:why", "w:howmany"}
        qa, qb = self.question_a, self.question_b
        return qa in specific and qb in specific and qa != qb

    @property
    def question_differs(self) -> bool:
        qa, qb = self.question_a, self.question_b
        return qa is not None and qb is not None and qa != qb


def _fold(word: str) -> str:
    """Case-fold and drop accents: "Österreich" → "osterreich", "Straße" → "strasse"."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Folded keys, except where folding would merge two words: "è" (is) must not become "e" (and).
_FOLDED_CLASSES = {_fold(w): c for w, c in _CLASSES.items() if len(w) > 2}
_FOLDED_CLASSES.update({w.casefold(): c for w, c in _CLASSES.items() if len(w) <= 2})
_FOLDED_FUNCTION = {lang: frozenset(_fold(w) for w in ws) for lang, ws in _FUNCTION.items()}
_FOLDED_NEGATION = frozenset(_fold(w) for w in _NEGATION)


@lru_cache(maxsize=65_536)
def _information(word: str, lang: str) -> float:
    """Bits-like surprisal of a word: 0 for the most frequent words, up to 6 for rare ones."""
    from wordfreq import zipf_frequency

    return max(0.0, min(6.0, 6.5 - zipf_frequency(word, lang)))


def detect_language(words: list[str]) -> str:
    """The language whose closed-class words the text uses most (ties: English)."""
    folded = [_fold(w) for w in words]
    if any(c in "¿¡ñ" for w in words for c in w.casefold()):
        return "es"
    best, best_score = "en", 0
    for lang in LANGUAGES:
        vocab = _FOLDED_FUNCTION[lang]
        score = sum(w in vocab for w in folded)
        if lang == "ru":
            score += 2 * sum(any("а" <= c <= "я" for c in w) for w in folded)
        if score > best_score:
            best, best_score = lang, score
    return best


@lru_cache(maxsize=65_536)
def _lemma(word: str, lang: str) -> str:
    import simplemma

    return _fold(simplemma.lemmatize(word, lang=lang))


def _number(text: str, ordinal: str | None) -> str:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        text = text.replace(",", "")
    text = text.replace(",", ".")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    text = text.lstrip("0") or "0"
    return f"{text}#" if ordinal else text


_ROMAN = re.compile(r"(?=[MDCLXVI]{2,}$)M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})")
_ROMAN_VALUES = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}


def _roman(word: str) -> str | None:
    """ "II" → "2", "XIV" → "14": upper-case Roman numerals of two letters or more."""
    if not _ROMAN.fullmatch(word):
        return None
    values = [_ROMAN_VALUES[c] for c in word]
    total = sum(
        -v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values)
    )
    return str(total)


def _split_apostrophes(word: str) -> list[tuple[str, bool]]:
    """ "isn't" → is + negation, "What's" → What + 's, "l'auteur" → l + auteur."""
    parts = re.split(r"['’]", word)
    if len(parts) == 1:
        return [(word, False)]
    out: list[tuple[str, bool]] = []
    low = word.casefold().replace("’", "'")
    if low.endswith("n't"):
        stem = low[:-3]
        out.append(({"ca": "can", "wo": "will", "sha": "shall"}.get(stem, stem), False))
        out.append(("n't", True))
        return out
    for i, part in enumerate(parts):
        if not part:
            continue
        out.append((part if i == 0 else "'" + part if len(part) <= 2 else part, False))
    return out


@lru_cache(maxsize=4096)
def analyse(text: str) -> Analysed:
    """Tokens of ``text`` with lemma, kind and role."""
    text = unicodedata.normalize("NFC", text)
    raw_words = [m.group("word") for m in _TOKEN.finditer(text) if m.group("word")]
    lang = detect_language(raw_words)
    if lang in _TEXT2NUM:
        from text_to_num import alpha2digit

        # Below 2, other languages' number words are articles (un, une, ein, una). A parser
        # failure only means no conversion.
        with contextlib.suppress(Exception):
            text = alpha2digit(text, lang, threshold=0 if lang == "en" else 2)
    function = _FOLDED_FUNCTION[lang]
    tokens: list[Token] = []
    role: str | None = None  # the preposition waiting for its word
    for m in _TOKEN.finditer(text):
        if m.group("num"):
            tokens.append(
                Token(m.group(0), _number(m.group("num"), m.group("ord")), "number", role)
            )
            role = None
            continue
        if m.group("sym"):
            word = _SYMBOLS[m.group("sym")]
            if word:
                tokens.append(Token(m.group("sym"), word, "content"))
            continue
        for part, negation in _split_apostrophes(m.group("word")):
            folded = _fold(part)
            if negation or folded in _FOLDED_NEGATION:
                tokens.append(Token(part, "not", "negation"))
                continue
            cls = _FOLDED_CLASSES.get(folded if len(folded) > 2 else part.casefold())
            if cls is not None and not (cls.startswith("r:") and folded in function):
                tokens.append(Token(part, cls, "class"))
                if cls.startswith(_ROLE_PREFIXES):
                    role = cls
                continue
            opening = not any(t.kind in ("content", "number") for t in tokens)
            if (
                folded in function
                or folded.startswith("'")
                or len(folded) == 1
                or (opening and folded in _REQUEST_VERBS)
            ):
                tokens.append(Token(part, folded, "function"))
                continue
            roman = _roman(part)
            if roman is not None:  # "World War II", "Louis XIV"
                tokens.append(Token(part, roman, "number", role))
            else:
                tokens.append(Token(part, _lemma(part, lang), "content", role))
            role = None
    return Analysed(text=text, language=lang, tokens=_ordered(_merge_questions(tokens)))


_OBJECT_MARKERS = {"a", "à"}  # "¿A quién…?", "À qui…?": the question word is the object


def _merge_questions(tokens: list[Token]) -> list[Token]:
    """ "how many" asks for a quantity (not "how" + "many"); "a quién" asks for an object."""
    out: list[Token] = []
    for t in tokens:
        prev = out[-1] if out else None
        if prev is not None and prev.lemma == "w:how" and t.lemma in ("q:several", "much"):
            out[-1] = Token(f"{prev.text} {t.text}", "w:howmany", "class")
            continue
        if prev is not None and _fold(prev.text) in _OBJECT_MARKERS and t.lemma == "w:who":
            out[-1] = Token(f"{prev.text} {t.text}", "w:whom", "class")
            continue
        out.append(t)
    return out


def _ordered(tokens: list[Token]) -> tuple[Token, ...]:
    """Give each token its order; an English possessor goes after what it possesses."""
    orders = [float(i) for i in range(len(tokens))]
    for i, t in enumerate(tokens[:-1]):
        if t.kind == "content" and tokens[i + 1].lemma in ("'s", "'"):
            j = i + 2
            while j < len(tokens) and tokens[j].kind in ("content", "function"):
                if tokens[j].kind == "content":
                    orders[i] = j + 0.5
                    if j + 1 < len(tokens) and tokens[j + 1].kind != "content":
                        break
                j += 1
    return tuple(
        Token(t.text, t.lemma, t.kind, t.role, order, _superlative(tokens, i))
        for i, (t, order) in enumerate(zip(tokens, orders, strict=True))
    )


def _superlative(tokens: list[Token], i: int) -> bool:
    """ "the tallest", "the most …", "le plus long", "der längste": a superlative adjective."""
    t = tokens[i]
    if t.kind != "content":
        return False
    if i > 0 and tokens[i - 1].lemma == "c:more":
        return True
    word = _fold(t.text)
    return word != t.lemma and word.endswith(("est", "ste", "sten", "ster", "stes"))


def embedding_text(text: str) -> str:
    """What the cache embeds: the request with number words as digits, so "sieben mal acht" and
    "7 mal 8" are neighbours for the embedder too."""
    return analyse(text).text


_NEGATING_PREFIXES = ("un", "in", "im", "il", "ir", "non", "dis", "a", "de", "an")


def _prefix_negation(a: set[str], b: set[str]) -> tuple[str, str] | None:
    for mine, theirs in ((a - b, b), (b - a, a)):
        for word in mine:
            for prefix in _NEGATING_PREFIXES:
                if len(word) > 3 and prefix + word in theirs:
                    return word, prefix + word
    return None


def _same_word(x: str, y: str) -> bool:
    """One lemma, or spelling variants sharing a long prefix ("colour"/"color", "ISO"/"iso")."""
    if x == y:
        return True
    n = min(len(x), len(y))
    if n < 5:
        return False
    common = 0
    for cx, cy in zip(x, y, strict=False):
        if cx != cy:
            break
        common += 1
    return common >= 5 and common >= 0.8 * n


def _one_swap(sequence: list[float]) -> tuple[int, int] | None:
    """The two positions whose exchange sorts ``sequence``, if that is all it takes."""
    target = sorted(sequence)
    wrong = [i for i, (x, y) in enumerate(zip(sequence, target, strict=True)) if x != y]
    return (wrong[0], wrong[1]) if len(wrong) == 2 else None


_COMMUTATIVE = {"l:and", "plus", "time", "times", "between"}


def _coordinated(
    an: Analysed,
    content: list[Token],
    pairs: list[tuple[int, int]],
    swap: tuple[int, int],
    side: int,
) -> bool:
    """The two swapped words are joined by "and" (or a commutative operator) and nothing else."""
    first, second = (content[pairs[k][side]] for k in swap)
    lo, hi = sorted((an.tokens.index(first), an.tokens.index(second)))
    between = an.tokens[lo + 1 : hi]
    return (
        bool(between)
        and all(t.kind == "function" or t.lemma in _COMMUTATIVE for t in between)
        and any(t.lemma in _COMMUTATIVE for t in between)
    )


def align(a: str, b: str) -> Alignment:
    """Align the content words of ``a`` and ``b`` (see the module docstring)."""
    x, y = analyse(a), analyse(b)
    ca, cb = x.content, y.content
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []  # (index in ca, index in cb)
    for i, t in enumerate(ca):
        for j, u in enumerate(cb):
            if j not in used and t.kind == u.kind and _same_word(t.lemma, u.lemma):
                used.add(j)
                pairs.append((i, j))
                break
    matched_a = {i for i, _ in pairs}
    only_a = tuple(t.lemma for i, t in enumerate(ca) if i not in matched_a and t.kind == "content")
    only_b = tuple(u.lemma for j, u in enumerate(cb) if j not in used and u.kind == "content")
    # Order: aligned words that occur once on each side.
    count_a, count_b = Counter(t.lemma for t in ca), Counter(u.lemma for u in cb)
    unique = [
        (i, j)
        for i, j in pairs
        if count_a[ca[i].lemma] == 1
        and count_b[cb[j].lemma] == 1
        and not (ca[i].free or cb[j].free)
    ]
    inversions = tuple(
        (ca[i1].lemma, ca[i2].lemma)
        for k, (i1, j1) in enumerate(unique)
        for i2, j2 in unique[k + 1 :]
        if (ca[i1].order - ca[i2].order) * (cb[j1].order - cb[j2].order) < 0
    )
    in_order = sorted(unique, key=lambda p: ca[p[0]].order)
    swap = _one_swap([cb[j].order for _, j in in_order]) if inversions else None
    if (
        swap is not None
        and _coordinated(x, ca, in_order, swap, 0)
        and _coordinated(y, cb, in_order, swap, 1)
    ):  # "cats and dogs" = "dogs and cats", "6 times 7" = "7 times 6"
        swap, inversions = None, ()
    swapped = swap is not None
    role_changes = tuple(
        (ca[i].lemma, ca[i].role or "", cb[j].role or "")
        for i, j in pairs
        if ca[i].role and cb[j].role and ca[i].role != cb[j].role
    )
    # A role that moved to another aligned word: "map codes to names" / "map names to codes".
    holders_a: dict[str, set[str]] = {}
    holders_b: dict[str, set[str]] = {}
    for i, j in pairs:
        if ca[i].role:
            holders_a.setdefault(ca[i].role or "", set()).add(ca[i].lemma)
        if cb[j].role:
            holders_b.setdefault(cb[j].role or "", set()).add(cb[j].lemma)
    role_changes += tuple(
        (", ".join(sorted(holders_a[r] ^ holders_b[r])), r, r)
        for r in sorted(holders_a.keys() & holders_b.keys())
        if holders_a[r] - holders_b[r]
        and holders_b[r] - holders_a[r]
        and not any(r == c[1] or r == c[2] for c in role_changes)
    )
    questions_a = [c for c in x.of_kind("class") if c.startswith("w:")]
    questions_b = [c for c in y.of_kind("class") if c.startswith("w:")]
    if {"w:who", "w:whom"} <= {
        *questions_a[:1],
        *questions_b[:1],
    }:  # "wen" / "wer": object / subject
        role_changes += (("w:who", questions_a[0], questions_b[0]),)
    elif x.asks_for and y.asks_for and x.asks_for != y.asks_for:  # "Who did X beat" / "Who beat X"
        role_changes += (("question", x.asks_for, y.asks_for),)
    classes_a = Counter(c for c in x.of_kind("class") if not c.startswith(("r:", "w:", "p:")))
    classes_b = Counter(c for c in y.of_kind("class") if not c.startswith(("r:", "w:", "p:")))
    class_diff = tuple(sorted((classes_a - classes_b) + (classes_b - classes_a)))
    owners_a = {c for c in x.of_kind("class") if c.startswith("p:")}
    owners_b = {c for c in y.of_kind("class") if c.startswith("p:")}
    if owners_a and owners_b and owners_a != owners_b:  # "my name" / "your name"
        class_diff += tuple(sorted(owners_a ^ owners_b))
    return Alignment(
        a=x,
        b=y,
        only_a=only_a,
        only_b=only_b,
        numbers_a=tuple(x.of_kind("number")),
        numbers_b=tuple(y.of_kind("number")),
        inversions=inversions,
        swapped=swapped,
        role_changes=role_changes,
        class_diff=class_diff,
        question_a=questions_a[0] if questions_a else None,
        question_b=questions_b[0] if questions_b else None,
        negation_differs=x.negated != y.negated,
        prefix_negation=_prefix_negation(
            {t.lemma for t in ca if t.kind == "content"},
            {u.lemma for u in cb if u.kind == "content"},
        ),
    )
