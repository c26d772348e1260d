"""PHT Assistant: a minimal chat page over :class:`assistant.Assistant`.

Run with ``streamlit run ui/app.py``; the index folder comes from ``PHT_DATA_DIR`` (see
assistant/settings.py). The conversation lives only in this browser session's memory: nothing a
patient types is logged or written anywhere.
"""

from __future__ import annotations

import logging
import re

import streamlit as st

from assistant import (
    SAFETY_NOTICE,
    Answer,
    Assistant,
    AssistantError,
    Status,
    get_settings,
)

log = logging.getLogger("assistant.ui")

GENERIC_ERROR = "Something went wrong while answering; please try again in a moment."


@st.cache_resource(
    show_spinner="Preparing the assistant… the first start loads the model and can take a minute."
)
def load_assistant(data_dir: str) -> Assistant:
    """One assistant per index folder (``data_dir`` is the cache key), shared by all sessions."""
    assistant = Assistant.from_settings(get_settings(), progress=False, notify=lambda _msg: None)
    assistant.warm_up()  # load the model now rather than on the first question
    return assistant


def md(text: str) -> str:
    """Markdown-safe text: Streamlit would read "$...$" as LaTeX."""
    return text.replace("$", r"\$")


def plain(text: str) -> str:
    """What the patient typed, shown as typed: markdown characters escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~<$])", r"\\\1", text)


def show_reply(turn: dict) -> None:
    """One reply: its body styled by status, its sources, and always the safety notice."""
    answer: Answer | None = turn["answer"]
    if answer is None:
        st.warning(turn["error"])
    elif answer.status is Status.urgent:
        st.error(md(answer.body))
    elif answer.status in (Status.not_covered, Status.out_of_scope):
        st.info(md(answer.body))
    else:
        st.markdown(md(answer.body))
        with st.expander("Sources"):
            for c in answer.citations:
                st.markdown(f"**[{c.n}] {md(c.title)}**")
                st.markdown("\n".join(f"> {line}" for line in md(c.quote).splitlines()))
    st.caption(SAFETY_NOTICE)


def ask(assistant: Assistant, question: str, turns: list[dict]) -> dict:
    """Answer ``question`` given the earlier turns; errors become a sentence to show."""
    history = []
    for t in turns:
        if t["answer"] is not None:  # turns that failed are not part of the conversation
            history += [
                {"role": "user", "content": t["question"]},
                {"role": "assistant", "content": t["answer"].body},
            ]
    try:
        return {"question": question, "answer": assistant.ask(question, history=history), "error": None}
    except AssistantError as exc:
        return {"question": question, "answer": None, "error": str(exc)}
    except Exception as exc:  # never show a patient a traceback; log no question text
        log.error("reply failed: %s", type(exc).__name__)
        return {"question": question, "answer": None, "error": GENERIC_ERROR}


st.set_page_config(page_title="PHT Assistant", page_icon="🦵")
st.title("PHT Assistant")
st.caption("Questions and answers about proximal hamstring tendinopathy (high hamstring tendon pain).")

try:
    assistant = load_assistant(str(get_settings().data_dir))
except AssistantError as exc:
    st.warning(str(exc))
    st.caption(SAFETY_NOTICE)
    st.stop()

turns: list[dict] = st.session_state.setdefault("turns", [])
question = st.chat_input("Ask a question about PHT…", max_chars=assistant.settings.max_question_chars)

if not turns and not question:
    with st.chat_message("assistant"):
        topics = "\n".join(f"- {t[:1].upper()}{t[1:]}" for t in assistant.topics())
        st.markdown(
            "Hello! I answer questions about proximal hamstring tendinopathy from a small set of "
            f"sources, quoting them with citations. They cover:\n\n{topics}\n\n"
            "If you describe warning signs, I will tell you to seek care instead."
        )

for turn in turns:
    with st.chat_message("user"):
        st.markdown(plain(turn["question"]))
    with st.chat_message("assistant"):
        show_reply(turn)

if question:
    with st.chat_message("user"):
        st.markdown(plain(question))
    with st.chat_message("assistant"):
        with st.spinner("Looking through the sources…"):
            turn = ask(assistant, question, turns)
        show_reply(turn)
    turns.append(turn)

st.divider()
st.caption(f"**Please note:** {SAFETY_NOTICE}")
