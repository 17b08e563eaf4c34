"""Final-answer extraction and equivalence for MATH-style LaTeX answers (no torch here).

Three steps, each usable alone:

- `extract_answer(text)`: the content of the last `\\boxed{...}` / `\\boxed 5` / `\\fbox{...}` (braces
  matched; a box cut off before its closing brace is no answer). Nothing else counts by default:
  "The cat has 5 legs" has no answer, not the answer 5. `fallback=True` also reads the text after
  "final answer is" / "the answer is" / "answer:", else the last number (for models that never box).
- `normalize(answer)`: a canonical LaTeX string (Hendrycks et al.'s `strip_string`, extended): drops
  `$`, `\\left`/`\\right`, thin spaces, degrees, percent and dollar signs, trailing unit words,
  a leading `x =`; writes `\\frac12` as `\\frac{1}{2}`, `.5` as `0.5`, `2.50` as `2.5`, `1,000` as `1000`,
  a repeating decimal `0.1\\overline{6}` as the fraction `\\frac{1}{6}`.
- `is_equiv(pred, ref)`: equal normalized strings, or the same structure (tuples and intervals in order
  with the same brackets, sets / comma lists / unions in any order, matrices cell by cell) whose
  leaves are equal as sympy expressions, built by a small LaTeX parser of our own (numbers, fractions,
  roots (odd ones real: `\\sqrt[3]{-8} = -2`), powers, pi, implicit multiplication, absolute values,
  floor / ceiling, logarithms to any base `\\log_2 8`, ...; decimals become exact rationals, so
  0.33 != 1/3). Expressions with variables must agree at points of both signs (`sympy_equal`):
  `\\sqrt{x^2}` and `|x|` are not `x`.

Symbolic checks run under a time limit and refuse huge numbers (2^{10^9}) before sympy sees them.
"""

from __future__ import annotations

import random
import re
import signal
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

SYMPY_TIMEOUT_S = 2.0
"""Time limit for one `sympy.simplify` call (enforced with SIGALRM in the main thread)."""
MAX_SYMBOLIC_CHARS = 400
"""Longer answers are compared as strings only."""

# --------------------------------------------------------------------------------------------
# Extraction


def _match_brace(text: str, start: int) -> int | None:
    """Index of the `}` closing the `{` at `start`, or None when the text ends first."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{" and text[i - 1 : i] != "\\":
            depth += 1
        elif text[i] == "}" and text[i - 1 : i] != "\\":
            depth -= 1
            if depth == 0:
                return i
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_ANSWER_PHRASE = re.compile(r"(?:final\s+answer|the\s+answer)\s*(?:is|:|=)\s*:?\s*|answer\s*:\s*", re.I)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\boxed 5`, `\\fbox{...}`); None without one or when
    the last box is cut off (an unfinished answer is no answer)."""
    boxes = list(_BOX.finditer(text))
    if not boxes:
        return None
    i = boxes[-1].end()
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        end = _match_brace(text, i)
        return None if end is None else text[i + 1 : end].strip()
    # `\boxed 5`: TeX takes the next token; we take the next run of non-space, non-$ characters.
    m = re.match(r"[^\s$]+", text[i:])
    return m.group(0).rstrip(".,;") if m else None


def _after_phrase(text: str) -> str | None:
    """What follows the last "final answer is" / "the answer is" / "answer:" on its line."""
    matches = list(_ANSWER_PHRASE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end > 0:
                return rest[len(open_) : end].strip()
    line = rest.split("\n", 1)[0]
    line = re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]  # end of sentence, not a decimal point
    return line.strip() or None


def extract_answer(text: str, fallback: bool = False) -> str | None:
    """The final answer written in `text`: the last complete box, else None; with `fallback`, a
    text without any box is also read for "the answer is ..." and then its last number (see the
    module docstring). A cut-off last box is no answer either way."""
    if _BOX.search(text):
        return last_boxed(text)
    if not fallback:
        return None
    phrase = _after_phrase(text)
    if phrase is not None:
        return phrase
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


# --------------------------------------------------------------------------------------------
# Normalization

_CONTROL_WORD = re.compile(r"\\[a-zA-Z]+")


def _tex_arg(s: str, i: int) -> tuple[str, int]:
    """One TeX macro argument starting at `i`: a braced group (returned without braces), a control
    word, or a single character; and the index after it."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        end = _match_brace(s, i)
        if end is None:
            return s[i + 1 :], len(s)
        return s[i + 1 : end], end + 1
    if s[i] == "\\":
        m = _CONTROL_WORD.match(s, i)
        end = m.end() if m else i + 2
        return s[i:end], end
    return s[i], i + 1


def _brace_args(s: str) -> str:
    """Rewrite `\\frac12`, `\\frac1{x}`, `\\sqrt2`, `\\binom52` with braced arguments (recursively)."""
    out: list[str] = []
    i = 0
    while i < len(s):
        m = _CONTROL_WORD.match(s, i)
        if not m:
            out.append(s[i])
            i += 1
            continue
        word = m.group(0)
        out.append(word)
        i = m.end()
        n_args = {"\\frac": 2, "\\binom": 2, "\\sqrt": 1}.get(word, 0)
        if word == "\\sqrt" and s[i : i + 1] == "[":  # \sqrt[3]{x}: keep the index as written
            close = s.find("]", i)
            if close < 0:
                break
            out.append(s[i : close + 1])
            i = close + 1
        for _ in range(n_args):
            arg, i = _tex_arg(s, i)
            out.append("{" + _brace_args(arg) + "}")
    return "".join(out)


def _unwrap(s: str, commands: str) -> str:
    """Replace `\\cmd{X}` by X for each command in the regex alternation `commands`."""
    pattern = re.compile(r"\\(?:" + commands + r")\s*\{")
    while m := pattern.search(s):
        end = _match_brace(s, m.end() - 1)
        if end is None:
            return s
        s = s[: m.start()] + s[m.end() : end] + s[end + 1 :]
    return s


_TEXT_CMDS = r"text|textbf|textit|textrm|textnormal|mbox|mathrm|mathbf|mathit|operatorname"
# A trailing unit in text mode after something else: `5\text{ cm}`, `6 \mbox{ square units}^2`.
_TEXT_UNIT = re.compile(r"\\(?:text|mbox|mathrm|textrm)\s*\{\s*[a-zA-Z][a-zA-Z .]*\}(?:\^\{?\d\}?)?\s*$")
# Plain unit words after a number (answers read from prose): `12 inches`, `5 square feet`.
_NUMBER_WORDS = re.compile(r"([+-]?[\d.,/]*\d)\s+([a-zA-Z]{2,}(?:\s+[a-zA-Z]+)*)\.?")
_NOT_UNITS = {"pi", "sqrt", "and", "or", "to", "i"}
# `x =`, `a_1 =`, `\theta =`, `p(x) =`, `x \in` before an answer.
_LEADING_VAR = re.compile(r"^(?:[a-zA-Z](?:_\{?\w+\}?|\([a-z]\))?|\\[a-zA-Z]+)\s*(?:=|\\in(?![a-zA-Z]))(?!=)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACES = re.compile(r"(\\[a-zA-Z]+)?\s+(?=([a-zA-Z])?)")


def _squash_spaces(s: str) -> str:
    """Remove whitespace, keeping one space where it ends a control word (`\\pi r`)."""
    return _SPACES.sub(lambda m: (m.group(1) or "") + (" " if m.group(1) and m.group(2) else ""), s)


_REPEATING = re.compile(r"(-?)(\d*)\.(\d*)\\overline\s*(?:\{\s*(\d+)\s*\}|(\d))")


def _repeating_to_fraction(m: re.Match[str]) -> str:
    """`1.2\\overline{34}` -> `\\frac{611}{495}`: the exact value of a repeating decimal."""
    from fractions import Fraction

    sign, whole, fixed, period = m.group(1), m.group(2) or "0", m.group(3), m.group(4) or m.group(5)
    value = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    if sign:
        value = -value
    if value.denominator == 1:
        return str(value.numerator)
    return f"{'-' if value < 0 else ''}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _trim_decimal(m: re.Match[str]) -> str:
    return m.group(0).rstrip("0").rstrip(".") if "." in m.group(0) else m.group(0)


def normalize(answer: str) -> str:
    """A canonical string for a final answer (see the module docstring); "" for no answer."""
    s = answer.strip().replace("\n", " ")
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(open_) and s.endswith(close) and len(s) >= len(open_) + len(close):
            s = s[len(open_) : len(s) - len(close)].strip()
    s = s.rstrip(".").strip()
    s = re.sub(r"\\(?:displaystyle|textstyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[!,]", "", s)  # negative and thin spaces, also thousands separators: 10,\!080, 1\,000
    s = re.sub(r"\\[;:]|(?<!\\)\\ |~", " ", s)
    s = s.replace("{,}", ",")  # 1{,}000
    s = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z])", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    if (m := _TEXT_UNIT.search(s)) and s[: m.start()].strip():
        s = s[: m.start()]
    s = _unwrap(s, _TEXT_CMDS).strip()
    if (m := _NUMBER_WORDS.fullmatch(s)) and not set(m.group(2).lower().split()) & _NOT_UNITS:
        s = m.group(1)
    if s.count("=") == 1 or (s.count("=") == 0 and "\\in" in s):
        s = _LEADING_VAR.sub("", s, count=1)
    s = s.strip().rstrip(".").strip()
    if _THOUSANDS.fullmatch(s):  # only a whole number: "1,2" or "(1,000)" stay lists and tuples
        s = s.replace(",", "")
    s = _brace_args(_squash_spaces(s))
    s = _REPEATING.sub(_repeating_to_fraction, s)  # before trimming zeros: 0.10\overline{6} is not 0.1\overline{6}
    s = re.sub(r"(?<![\w}])\.(\d)", r"0.\1", s)  # .5 -> 0.5
    s = re.sub(r"\d+\.\d+", _trim_decimal, s)  # 2.50 -> 2.5, 3.0 -> 3
    if m := re.fullmatch(r"(-?\d+)/(\d+)", s):
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    if m := re.fullmatch(r"\(([A-Z])\)", s):  # multiple choice: (A) is A
        s = m.group(1)
    return s


# --------------------------------------------------------------------------------------------
# Structure: unions, sets, tuples / intervals, bare lists, matrices


class Shape(NamedTuple):
    kind: str
    """'atom', 'seq' (tuple or interval: ordered, brackets matter), 'set' (unordered), 'union',
    or 'matrix' (rows of cells)."""
    brackets: str
    """Opening and closing bracket of a 'seq', e.g. '(]'; '' otherwise."""
    items: tuple[Any, ...]
    """Sub-shapes; for an atom, the normalized string; for a matrix, one tuple of cells per row."""


def _split_top(s: str, sep: str) -> list[str]:
    """Split at `sep` where no bracket of any kind is open."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        if s.startswith(sep, i) and depth == 0:
            parts.append(s[start:i])
            i += len(sep)
            start = i
            continue
        if s[i] in "([{":
            depth += 1
        elif s[i] in ")]}":
            depth -= 1
        i += 1
    parts.append(s[start:])
    return parts


def _one_group(s: str) -> bool:
    """Whether the bracket opening `s` closes only at its last character."""
    depth = 0
    for i, c in enumerate(s):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth == 0:
            return i == len(s) - 1
    return False


def shape(s: str) -> Shape:
    """The structure of a normalized answer."""
    if len(parts := _split_top(s, "\\cup")) > 1:
        return Shape("union", "", tuple(shape(p) for p in parts))
    if m := re.fullmatch(r"\\begin\{([pbBvV]?matrix)\}(.*)\\end\{\1\}", s):
        rows = [r for r in m.group(2).split("\\\\") if r.strip()]
        return Shape("matrix", "", tuple(tuple(shape(c) for c in r.split("&")) for r in rows))
    if s.startswith("\\{") and s.endswith("\\}") and _one_group(s[1:]):
        inner = s[2:-2]
        return Shape("set", "", tuple(shape(p) for p in _split_top(inner, ",")) if inner else ())
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _one_group(s):
        if len(parts := _split_top(s[1:-1], ",")) > 1:
            return Shape("seq", s[0] + s[-1], tuple(shape(p) for p in parts))
    if len(parts := _split_top(s, ",")) > 1:
        return Shape("set", "", tuple(shape(p) for p in parts))  # "1, -2": all solutions, any order
    return Shape("atom", "", (s,))


def _match_unordered(a: tuple[Shape, ...], b: tuple[Shape, ...]) -> bool:
    if len(a) != len(b):
        return False
    left = list(b)
    for x in a:
        hit = next((j for j, y in enumerate(left) if _shapes_equiv(x, y)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _shapes_equiv(a: Shape, b: Shape) -> bool:
    if a.kind == "atom" and b.kind == "atom":
        return atoms_equiv(a.items[0], b.items[0])
    if {a.kind, b.kind} == {"atom", "set"}:  # \{5\} and 5
        a, b = (Shape("set", "", (x,)) if x.kind == "atom" else x for x in (a, b))
    if a.kind != b.kind or a.brackets != b.brackets or len(a.items) != len(b.items):
        return False
    if a.kind in ("set", "union"):
        return _match_unordered(a.items, b.items)
    if a.kind == "matrix":
        return all(
            len(ra) == len(rb) and all(_shapes_equiv(x, y) for x, y in zip(ra, rb))
            for ra, rb in zip(a.items, b.items)
        )
    return all(_shapes_equiv(x, y) for x, y in zip(a.items, b.items))


def is_equiv(pred: str | None, ref: str | None) -> bool:
    """Whether two final answers (raw, as extracted) mean the same thing."""
    if pred is None or ref is None:
        return False
    a, b = normalize(pred), normalize(ref)
    if not a or not b:
        return False
    return a == b or _shapes_equiv(shape(a), shape(b))


# --------------------------------------------------------------------------------------------
# LaTeX -> sympy for the common subset of final answers


class Unsupported(ValueError):
    """The answer uses LaTeX outside the subset `to_sympy` understands, or numbers too large."""


_TOKEN = re.compile(r"\\[a-zA-Z]+|\\.|\d+(?:\.\d+)?|\.\d+|[a-zA-Z]|\S")
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
}  # fmt: skip
_FUNCTIONS = ("sin", "cos", "tan", "cot", "sec", "csc", "ln", "log", "exp", "arcsin", "arccos", "arctan")
_ATOM_COMMANDS = ("pi", "infty", "frac", "sqrt", "binom", "lvert", "vert", "lfloor", "lceil")
_BARS = ("|", "\\lvert", "\\rvert", "\\vert")
_MAX_EXPONENT = 1000  # a numeric power or factorial beyond this is refused, not computed


class _Parser:
    """Recursive descent over tokens: expr := term (+|- term)*; term := unary ((*|/|implicit) unary)*;
    unary := -unary | power; power := postfix (^ arg)?; postfix := atom !*."""

    def __init__(self, text: str) -> None:
        import sympy

        self.sp = sympy
        self.tokens = _TOKEN.findall(text)
        self.i = 0
        self.in_bars = 0  # inside |...|, a bar closes: `|x|y` is never read as |x (|y...)

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise Unsupported(f"expected {expected or 'a token'}, got {tok}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.expr()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()}")
        return value

    def expr(self) -> Any:
        value = self.term()
        while self.peek() in ("+", "-", "\\pm"):
            if self.take() == "\\pm":
                raise Unsupported("\\pm")
            value = value + self.term() if self.tokens[self.i - 1] == "+" else value - self.term()
        return value

    def starts_atom(self, tok: str | None) -> bool:
        if tok is None:
            return False
        if tok.startswith("\\") and tok[1:].isalpha():
            return tok[1:] in _GREEK or tok[1:] in _FUNCTIONS or tok[1:] in _ATOM_COMMANDS
        if tok == "|":
            return not self.in_bars
        return tok[0].isdigit() or tok[0] == "." or tok.isalpha() or tok in ("(", "{")

    def term(self) -> Any:
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "\\cdot", "\\times"):
                self.take()
                value = value * self.unary()
            elif tok in ("/", "\\div"):
                self.take()
                value = value / self.unary()
            elif self.starts_atom(tok):  # implicit multiplication: 2x, 2\pi, 3(x+1), \sqrt{2}\pi
                value = value * self.power()
            else:
                return value

    def unary(self) -> Any:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
        return self.power()

    def power(self) -> Any:
        base = self.postfix()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.tex_arg()
        if exponent.is_Number and abs(exponent) > _MAX_EXPONENT and not (base.is_Number and abs(base) <= 1):
            raise Unsupported("power too large")  # 2^{10^9} or x^{10^9} would hang sympy or a probe
        return base**exponent

    def postfix(self) -> Any:
        value = self.atom()
        while self.peek() == "!":
            self.take()
            if not (value.is_Integer and 0 <= value <= _MAX_EXPONENT):
                raise Unsupported("factorial")
            value = self.sp.factorial(value)
        return value

    def tex_arg(self) -> Any:
        """A macro argument: a braced group, or one token (TeX reads `x^23` as x^2 * 3)."""
        tok = self.peek()
        if tok == "{":
            return self.group("{", "}")
        if tok is not None and tok[0].isdigit() and len(tok) > 1:
            self.tokens[self.i] = tok[1:]
            return self.sp.Integer(tok[0])
        return self.atom()

    def group(self, open_: str, close: str) -> Any:
        self.take(open_)
        value = self.expr()
        self.take(close)
        return value

    def atom(self) -> Any:
        sp = self.sp
        tok = self.peek()
        if tok is None:
            raise Unsupported("unexpected end")
        if tok in ("(", "{"):
            return self.group(tok, ")" if tok == "(" else "}")
        if tok in _BARS:  # |x|, \lvert x \rvert
            self.take()
            self.in_bars += 1
            value = self.expr()
            self.in_bars -= 1
            if self.take() not in _BARS:
                raise Unsupported("unclosed |")
            return sp.Abs(value)
        if tok in ("\\lfloor", "\\lceil"):
            self.take()
            value = self.expr()
            self.take("\\rfloor" if tok == "\\lfloor" else "\\rceil")
            return sp.floor(value) if tok == "\\lfloor" else sp.ceiling(value)
        if tok[0].isdigit() or tok[0] == ".":
            self.take()
            return sp.Rational(tok)  # exact: 0.33 is 33/100, never 1/3
        if tok.isalpha():
            self.take()
            return sp.Symbol(tok + self.subscript())
        self.take()
        name = tok[1:]
        if tok == "\\pi":
            return sp.pi
        if tok == "\\infty":
            return sp.oo
        if name in _GREEK:
            return sp.Symbol(name + self.subscript())
        if tok == "\\frac":
            return self.tex_arg() / self.tex_arg()
        if tok == "\\binom":
            n, k = self.tex_arg(), self.tex_arg()
            if n.is_Number and k.is_Number and min(k, n - k) > _MAX_EXPONENT:
                raise Unsupported("binomial too large")
            return sp.binomial(n, k)
        if tok == "\\sqrt":
            if self.peek() == "[":
                index = self.group("[", "]")
                if index.is_Integer and index % 2 == 1:  # the real root: \sqrt[3]{-8} is -2
                    return sp.real_root(self.tex_arg(), index)
                return sp.root(self.tex_arg(), index)
            return sp.sqrt(self.tex_arg())
        if name in _FUNCTIONS:
            power = base = None
            if name == "log" and self.peek() == "_":  # \log_2 8, \log_{10}(x)
                self.take()
                base = self.tex_arg()
            if self.peek() == "^":  # \sin^2 x
                self.take()
                power = self.tex_arg()
            arg = self.group("(", ")") if self.peek() == "(" else self.power()
            fn = {"ln": sp.log, "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan}.get(name)
            value = sp.log(arg, base) if base is not None else (fn or getattr(sp, name))(arg)
            return value if power is None else value**power
        raise Unsupported(tok)

    def subscript(self) -> str:
        if self.peek() != "_":
            return ""
        self.take()
        if self.peek() != "{":
            return "_" + self.take()
        depth, parts = 0, []
        while True:
            tok = self.take()
            depth += (tok == "{") - (tok == "}")
            parts.append(tok)
            if depth == 0:
                return "_" + "".join(parts[1:-1])


def to_sympy(s: str) -> Any:
    """A sympy expression for a normalized atom; raises `Unsupported` outside the subset.

    A mixed number written as an integer before a fraction (`2\\frac{1}{4}`) means 2 + 1/4, as in
    MATH's answers, not 2 * 1/4.
    """
    import sympy

    if m := re.fullmatch(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}", s):
        sign = -1 if m.group(1) else 1
        return sign * (sympy.Integer(m.group(2)) + sympy.Rational(int(m.group(3)), int(m.group(4))))
    try:
        return _Parser(s).parse()
    except (TypeError, ZeroDivisionError, RecursionError, AttributeError) as e:
        raise Unsupported(str(e)) from e


class _Timeout(Exception):
    pass


def _with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run `fn` with a SIGALRM deadline where signals are available (main thread, Unix); raises
    `_Timeout`. Elsewhere it runs unguarded: the size limits of the parser still bound the work."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return fn()

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _numeric_zero(diff: Any, scale: Any) -> bool | None:
    """Whether a constant expression is 0 to 40 significant digits (None if it doesn't evaluate)."""
    import sympy

    value, size = sympy.N(diff, 50), sympy.N(scale, 50)
    if not value.is_number or value.has(sympy.nan, sympy.zoo):
        return None
    return bool(abs(value) <= sympy.Float("1e-40", 50) * max(1, abs(size)))


PROBES = 8
"""Points at which two expressions with variables are compared numerically."""


def probe_points(symbols: list[Any]) -> list[dict[Any, Any]]:
    """`PROBES` points (seeded) of rational coordinates, magnitudes alternating between above 1
    (p/q, 1 <= p <= 97, 1 <= q <= 13) and below 1 (p/q, 1 <= p <= 12, 13 <= q <= 29); every symbol
    positive at the first and fourth points, negative at the second and third, then random signs
    with both signs at each point when there are several symbols."""
    import sympy

    rng = random.Random(0)
    points = []
    for k in range(PROBES):
        if k < 4:
            signs = [1 if k in (0, 3) else -1] * len(symbols)
        else:
            signs = [rng.choice((-1, 1)) for _ in symbols]
            if len(symbols) > 1 and len(set(signs)) == 1:
                signs[rng.randrange(len(symbols))] *= -1
        low, high = ((1, 12), (13, 29)) if k % 2 else ((1, 97), (1, 13))
        points.append({x: sign * sympy.Rational(rng.randint(*low), rng.randint(*high))
                       for x, sign in zip(symbols, signs)})
    return points


def sympy_equal(a: Any, b: Any) -> bool:
    """Exact equality of two sympy expressions.

    Rationals compare exactly. Other constants (roots, pi) compare to 40 digits. With free symbols,
    `PROBES` rational points (`probe_points`) reject unequal pairs cheaply: magnitudes below and
    above 1 and both signs (every symbol positive, every symbol negative, then mixed), since an identity true for
    positive values only (`\\sqrt{x^2} = x`, `|x| = x`, `\\log x^2 = 2 \\log x`) is no identity.
    Then `simplify(a - b) == 0` decides, and when it times out or can't reduce the difference,
    agreement at every probe that evaluates (at least 3) does.
    """
    import sympy

    if a.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) or b.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
        return bool(a == b)
    diff = a - b
    if diff == 0:
        return True
    if diff.is_Rational:
        return False
    symbols = sorted(diff.free_symbols, key=str)
    if not symbols:
        return bool(_numeric_zero(diff, a))
    probes = 0
    for point in probe_points(symbols):
        zero = _numeric_zero(diff.subs(point), a.subs(point))
        if zero is False:
            return False
        probes += zero is True
    try:
        if _with_timeout(lambda: sympy.simplify(diff), SYMPY_TIMEOUT_S) == 0:
            return True
    except _Timeout:
        pass
    return probes >= 3


def _equation_sides(s: str) -> tuple[str, str] | None:
    parts = s.split("=")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def atoms_equiv(a: str, b: str) -> bool:
    """Equality of two normalized single answers: as strings, else as sympy expressions.

    Two equations compare as lhs - rhs, up to the sign (`2x + y = 3` is `3 = y + 2x`).
    """
    if a == b:
        return True
    if max(len(a), len(b)) > MAX_SYMBOLIC_CHARS:
        return False
    try:
        ea, eb = _equation_sides(a), _equation_sides(b)
        if ea and eb:
            da = to_sympy(ea[0]) - to_sympy(ea[1])
            db = to_sympy(eb[0]) - to_sympy(eb[1])
            return sympy_equal(da, db) or sympy_equal(da, -db)
        if "=" in a or "=" in b:
            return False
        return sympy_equal(to_sympy(a), to_sympy(b))
    except (Unsupported, _Timeout):
        return False
    except Exception:  # sympy raises many kinds of errors on odd input; an odd answer is no match
        return False
