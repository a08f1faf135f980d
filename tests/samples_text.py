"""Sample input files for the text, encoding and e-mail readers, built on the fly.

Real files in legacy code pages and real mailboxes would bring someone's text into the
repository; these are invented news-like sentences (people, organisations, places, all made
up) encoded the way the files arrive in practice: Windows code pages, a PowerShell UTF-16
export, e-mails as a mail client writes them. Everything is deterministic (fixed Date,
Message-ID and MIME boundaries), so two builds give the same bytes.

Each ``*_TEXT`` constant is what the matching generator's bytes decode to.
"""

from __future__ import annotations

import json
from email import policy
from email.message import EmailMessage

__all__ = [
    "CHINESE_TEXT",
    "GERMAN_FRENCH_TEXT",
    "JAPANESE_TEXT",
    "JSONL_RECORDS",
    "RUSSIAN_TEXT",
    "attachments_only_email",
    "cp1251_text",
    "cp1252_text",
    "gb18030_text",
    "html_email",
    "mbox_of",
    "plain_email",
    "shift_jis_text",
    "utf16_jsonl",
]

RUSSIAN_TEXT = (
    "Вчера в Новосибирске Анна Петрова, директор компании «Сибирские Технологии», объявила о новом "
    "проекте. По её словам, завод откроется весной в Томске.\n\n"
    "Мэр города Игорь Смирнов поддержал это решение. Эксперты банка «Восток» считают, что проект "
    "создаст триста рабочих мест."
)

GERMAN_FRENCH_TEXT = (
    "Gestern hat Jürgen Weiß, Vorstand der Müller Maschinenbau AG, in Düsseldorf eine neue Fabrik "
    "eröffnet. Die Bürgermeisterin Käthe Groß begrüßte die Entscheidung.\n\n"
    "À Lyon, Hélène Lefèvre, directrice de la société Énergie Française, a annoncé l'ouverture d'un "
    "nouveau bureau près de la gare. Le maire, François Bérard, était présent."
)

CHINESE_TEXT = (
    "昨天，华光科技公司总经理李明在北京宣布，公司将在上海建设新的研发中心。"
    "他表示，这个项目预计明年春天完工，将创造三百个工作岗位。\n\n"
    "上海市副市长王芳出席了签约仪式，并对项目表示欢迎。"
)

JAPANESE_TEXT = (
    "昨日、東京の山田商事の社長である佐藤健一氏は、大阪に新しい工場を建設すると発表した。"
    "工場は来年の春に完成する予定で、約三百人の雇用が見込まれている。\n\n"
    "大阪府の田中知事は、この計画を歓迎するとコメントした。"
)

JSONL_RECORDS = [
    {"id": "ps-1", "text": "Maria Lindqvist joined Nordhavn Shipping in Gothenburg."},
    {"id": "ps-2", "text": "Der Vorstand von Alpenbahn AG traf sich in Innsbruck mit Lukas Hofer."},
    {"id": "ps-3", "text": "Ольга Соколова открыла филиал «Северный Ветер» в Мурманске."},
]

_DATE = "Mon, 05 Jan 2026 10:00:00 +0000"
_FROM = "Clara Jensen <clara.jensen@example.org>"
_TO = "Tomas Novak <tomas.novak@example.com>"

PLAIN_SUBJECT = "Vertrag mit Brightwater Energy unterschrieben"
PLAIN_BODY = (
    "Hallo Tomas,\n\n"
    "heute hat Brightwater Energy in Rotterdam den Vertrag unterschrieben. "
    "Jörg Bäcker aus Köln war dabei.\n\n"
    "From the desk of Clara Jensen, Hamburg\n\n"
    "Viele Grüße\nClara"
)

HTML_SUBJECT = "Quarterly meeting in Lisbon"
HTML_BODY = (
    "<!DOCTYPE html><html lang='en'><head><title>Meeting</title></head><body>"
    "<h1>Quarterly meeting</h1>"
    "<p>Sofia Almeida of Tagus Analytics will host the meeting in Lisbon.</p>"
    "<p>Daniel Okafor from Lagos Freight confirmed his attendance.</p>"
    "</body></html>"
)


def cp1251_text() -> bytes:
    """:data:`RUSSIAN_TEXT` in Windows-1251, as a Russian Windows editor saves it."""
    return RUSSIAN_TEXT.replace("\n", "\r\n").encode("cp1251")


def cp1252_text() -> bytes:
    """:data:`GERMAN_FRENCH_TEXT` in Windows-1252 (German and French accents)."""
    return GERMAN_FRENCH_TEXT.replace("\n", "\r\n").encode("cp1252")


def gb18030_text() -> bytes:
    """:data:`CHINESE_TEXT` in GB18030."""
    return CHINESE_TEXT.encode("gb18030")


def shift_jis_text() -> bytes:
    """:data:`JAPANESE_TEXT` in Shift-JIS."""
    return JAPANESE_TEXT.encode("shift_jis")


def utf16_jsonl() -> bytes:
    """:data:`JSONL_RECORDS` as PowerShell's ``Out-File`` writes them by default: UTF-16 LE
    with a byte order mark, CRLF line ends."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in JSONL_RECORDS)
    return b"\xff\xfe" + lines.encode("utf-16-le")


def _message(subject: str, message_id: str) -> EmailMessage:
    msg = EmailMessage(policy=policy.default)
    msg["From"] = _FROM
    msg["To"] = _TO
    msg["Subject"] = subject
    msg["Date"] = _DATE
    msg["Message-ID"] = f"<{message_id}@example.org>"
    return msg


def _plain_message(subject: str = PLAIN_SUBJECT, body: str = PLAIN_BODY, number: int = 1) -> EmailMessage:
    msg = _message(subject, f"plain-{number}")
    msg.set_content(body)  # UTF-8, quoted-printable or 8bit as the policy picks: both occur
    return msg


def plain_email() -> bytes:
    """One text/plain message: :data:`PLAIN_SUBJECT` and :data:`PLAIN_BODY`."""
    return _plain_message().as_bytes()


def html_email() -> bytes:
    """A message whose only body is text/html (:data:`HTML_BODY`) inside multipart/mixed,
    beside a PDF attachment, so the body's part path is ``body/1``."""
    msg = _message(HTML_SUBJECT, "html-1")
    msg.set_content(HTML_BODY, subtype="html")
    msg.add_attachment(b"%PDF-1.7\n%fake\n", maintype="application", subtype="pdf", filename="agenda.pdf")
    msg.set_boundary("==boundary-html-1==")
    return msg.as_bytes()


def attachments_only_email() -> bytes:
    """A message with two attachments (``report.pdf``, ``photo.jpg``) and no text body."""
    msg = _message("Scans from the Vienna office", "attach-1")
    msg.add_attachment(b"%PDF-1.7\n%fake\n", maintype="application", subtype="pdf", filename="report.pdf")
    msg.add_attachment(b"\xff\xd8\xff\xe0fake", maintype="image", subtype="jpeg", filename="photo.jpg")
    msg.set_boundary("==boundary-attach-1==")
    return msg.as_bytes()


def mbox_of(n: int) -> bytes:
    """An mbox (mboxrd quoting) of ``n`` text/plain messages; message ``k`` (1-based) has the
    subject ``"Message k from Harbour Logistics"``, and every body holds a line that starts
    with ``"From "`` (quoted as ``">From "`` in the file)."""
    out = []
    for k in range(1, n + 1):
        msg = _plain_message(f"Message {k} from Harbour Logistics", f"Line {k}.\n\n{PLAIN_BODY}", k)
        # mboxrd: every line matching ^>*From  gets one more ">", so reading can undo it.
        raw = msg.as_bytes(policy=policy.default.clone(linesep="\n", cte_type="8bit"))
        lines = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in raw.split(b"\n")]
        out.append(
            b"From clara.jensen@example.org Mon Jan  5 10:00:00 2026\n" + b"\n".join(lines).rstrip(b"\n") + b"\n\n"
        )
    return b"".join(out)
