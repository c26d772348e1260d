"""PHT Assistant: the patients' chat page over :class:`assistant.Assistant`.

Run with ``make run`` (or ``streamlit run ui/app.py``); the index folder comes from ``PHT_DATA_DIR``
(see assistant/settings.py). The conversation lives only in this browser session's memory. Nothing a
patient types is logged or stored, unless ``PHT_FEEDBACK_ENABLED`` turns on the thumbs under each
reply (then only the rating, its optional comment and the cited sources are kept; the question too
only with ``PHT_LOG_QUESTIONS``). See docs/page.md.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator

import streamlit as st

from assistant import (
    SAFETY_NOTICE,
    Delta,
    Done,
    Answer,
    Assistant,
    AssistantError,
    Citation,
    Settings,
    Status,
    get_settings,
)
from assistant.feedback import Feedback, FeedbackStore

log = logging.getLogger("assistant.ui")

GENERIC_ERROR = "Something went wrong while answering; please try again in a moment."
START_ERROR = "The assistant could not start; please try again in a few minutes."
# Answerable from the corpus as it is; tests/test_page.py checks that each one still is.
EXAMPLES = (
    "Can running be part of my rehab?",
    "Which exercises can I do to build muscle with PHT?",
    "Should I still run my marathon?",
)

# Each status has its own look; icons are Material Symbols (Streamlit's ":material/...:").
ICON = {
    Status.urgent: ":material/emergency:",
    Status.not_covered: ":material/menu_book:",
    Status.out_of_scope: ":material/info:",
    "error": ":material/build:",
}

# Legibility (WCAG AA, checked by tests/browser): captions carry the safety notice and quotes are
# the answer itself, so neither may be faded (Streamlit fades both); highlighted quotes get a
# contrast that holds in the light and the dark theme.
STYLE = """
<style>
[data-testid="stCaptionContainer"] { color: inherit; opacity: 0.9; }
[data-testid="stChatMessage"] [data-testid="stMarkdownContainer"] blockquote { opacity: 1; color: inherit; }
mark.pht-quote { background: #fff3a3; color: #1f1f1f; padding: 0 0.1em; border-radius: 0.2em; }
blockquote.pht-passage { margin: 0; padding-left: 0.75em; border-left: 0.25em solid #8a8d99; }
</style>
"""


@st.cache_resource(
    show_spinner="Preparing the assistant… the first start loads the model and can take a minute."
)
def load_assistant(data_dir: str) -> Assistant:
    """One assistant per index folder (``data_dir`` is the cache key), shared by all sessions."""
    settings = get_settings()
    assistant = Assistant.from_settings(settings, progress=False, notify=lambda _msg: None)
    assistant.warm_up()  # load the model now rather than on the first question
    assistant.follow_index(settings.index_refresh_seconds)  # a newly built index, without a restart
    return assistant


@st.cache_resource(show_spinner=False)
def feedback_store(path: str) -> FeedbackStore:
    return FeedbackStore(path)


# -- text -----------------------------------------------------------------------------------------


def md(text: str) -> str:
    """Markdown-safe text: Streamlit would read "$...$" as LaTeX."""
    return text.replace("$", r"\$")


def plain(text: str) -> str:
    """What the patient typed, shown as typed: markdown characters escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~<$:])", r"\\\1", text)


def as_html(text: str) -> str:
    """Text for an HTML block: escaped, line breaks kept, "$" kept away from the LaTeX reader."""
    return html.escape(text).replace("$", "&#36;").replace("\n", "<br>")


# -- one reply ------------------------------------------------------------------------------------


def show_sources(assistant: Assistant, answer: Answer) -> None:
    """Each cited source under the reply: its title, and the quote highlighted in its paragraph."""
    st.markdown("**Sources**")
    for c in answer.citations:
        with st.expander(f"[{c.n}] {md(c.title)}", icon=":material/format_quote:"):
            st.markdown(passage(assistant, c), unsafe_allow_html=True)
            st.caption(f"{md(c.source)} · version {c.version}")


def passage(assistant: Assistant, citation: Citation) -> str:
    """The quote, highlighted inside its surrounding paragraph when the index still has it."""
    try:
        context = assistant.context_of(citation)
    except Exception as exc:  # the quote alone is still worth showing
        log.warning("context of a citation unavailable: %s", type(exc).__name__)
        context = None
    before, quote, after = context or ("", citation.quote, "")
    return (
        f'<blockquote class="pht-passage">{as_html(before)}'
        f'<mark class="pht-quote">{as_html(quote)}</mark>{as_html(after)}</blockquote>'
    )


def show_reply(assistant: Assistant, turn: dict, settings: Settings, *, streamed: bool = False) -> None:
    """One reply, styled by its status, then always the safety notice, then (if on) feedback.
    ``streamed``: an answered reply's text is already on the page (written as it arrived)."""
    answer: Answer | None = turn["answer"]
    if answer is None:
        st.warning(turn["error"], icon=ICON["error"])
    elif answer.status is Status.urgent:
        # The action to take and nothing else: no sources, no feedback.
        st.error(md(answer.body), icon=ICON[Status.urgent])
    elif answer.status is Status.not_covered:
        st.info(md(answer.body), icon=ICON[Status.not_covered])
        if answer.citations:  # the closest thing the sources say, quoted: where it comes from
            show_sources(assistant, answer)
    elif answer.status is Status.out_of_scope:
        with st.container(border=True):
            st.markdown(f"{ICON[Status.out_of_scope]} {md(answer.body)}")
    else:
        if not streamed:
            st.markdown(md(answer.body))
        show_sources(assistant, answer)
    st.caption(SAFETY_NOTICE)
    if answer is not None and answer.status is not Status.urgent and settings.feedback_enabled:
        show_feedback(answer, turn["question"], settings)


def show_feedback(answer: Answer, question: str, settings: Settings) -> None:
    """Thumbs up/down and an optional comment, stored in SQLite (only called when turned on)."""
    key = f"thumbs-{answer.id}"
    store = feedback_store(str(settings.feedback_path))

    def entry(thumbs: str, comment: str = "") -> Feedback:
        return Feedback(
            answer_id=answer.id,
            status=answer.status.value,
            thumbs=thumbs,  # type: ignore[arg-type]
            comment=comment,
            sources=tuple(c.source for c in answer.citations),
            corpus_version=answer.corpus_version,
            question=question if settings.log_questions else None,
        )

    def on_thumbs() -> None:
        value = st.session_state.get(key)
        try:
            if value is None:
                store.forget(answer.id)
            else:
                store.save(entry("up" if value == 1 else "down"))
        except Exception as exc:  # a rating that cannot be stored must not break the chat
            log.error("feedback not stored: %s", type(exc).__name__)
            st.session_state[f"{key}-failed"] = True

    st.caption("Was this reply helpful?")
    st.feedback("thumbs", key=key, on_change=on_thumbs)
    value = st.session_state.get(key)
    if st.session_state.get(f"{key}-failed"):
        st.caption("Sorry, your rating could not be saved.")
    elif value is not None:
        with st.form(f"comment-{answer.id}", border=False, clear_on_submit=True):
            comment = st.text_input("Comment (optional)", max_chars=500, key=f"comment-{answer.id}-text")
            sent = st.form_submit_button("Send comment")
        if sent and comment.strip():
            try:
                store.save(entry("up" if value == 1 else "down", comment))
                st.session_state[f"{key}-commented"] = True
            except Exception as exc:
                log.error("feedback comment not stored: %s", type(exc).__name__)
                st.caption("Sorry, your comment could not be saved.")
        st.caption(
            "Thank you, your comment was saved."
            if st.session_state.get(f"{key}-commented")
            else "Thank you, your rating was saved."
        )


def history_of(turns: list[dict]) -> list[dict[str, str]]:
    """The conversation so far, for a follow-up question (turns that failed are left out)."""
    history = []
    for t in turns:
        if t["answer"] is not None:
            history += [
                {"role": "user", "content": t["question"]},
                {"role": "assistant", "content": t["answer"].body},
            ]
    return history


def ask(assistant: Assistant, question: str, turns: list[dict]) -> dict:
    """Answer ``question`` given the earlier turns; errors become a sentence to show."""
    try:
        return {"question": question, "answer": assistant.ask(question, history=history_of(turns)), "error": None}
    except AssistantError as exc:
        return {"question": question, "answer": None, "error": str(exc)}
    except Exception as exc:  # never show a patient a traceback; log no question text
        log.error("reply failed: %s", type(exc).__name__)
        return {"question": question, "answer": None, "error": GENERIC_ERROR}


def stream_reply(assistant: Assistant, question: str, turns: list[dict]) -> tuple[dict, bool]:
    """Answer ``question`` as the pipeline writes it: an answered reply's text appears piece by
    piece as each piece arrives (a language model's sentences once they pass the grounding check);
    other replies arrive whole. Returns the turn and whether its text is already on the page."""
    done: list[Answer] = []
    try:
        with st.spinner("Looking through the sources…"):
            events = assistant.stream(question, history=history_of(turns))
            first = next(events)
        if first.status is not Status.answered:
            done = [e.answer for e in events if isinstance(e, Done)]
            return {"question": question, "answer": done[-1], "error": None}, False
        st.write_stream(_body_pieces(events, done))
        return {"question": question, "answer": done[-1], "error": None}, True
    except AssistantError as exc:
        return {"question": question, "answer": None, "error": str(exc)}, False
    except Exception as exc:  # never show a patient a traceback; log no question text
        log.error("reply failed: %s", type(exc).__name__)
        if done:
            return {"question": question, "answer": done[-1], "error": None}, False
        return {"question": question, "answer": None, "error": GENERIC_ERROR}, False


def _body_pieces(events: Iterator, done: list[Answer]) -> Iterator[str]:
    """The reply's text pieces without the safety notice at its end (the page shows the notice on
    its own line under every reply); the finished Answer is appended to ``done``."""
    held = ""
    for event in events:
        if isinstance(event, Delta):
            held += event.text
            if SAFETY_NOTICE.startswith(held.strip()) or held.strip().endswith(SAFETY_NOTICE):
                continue  # what may be the start of the notice waits for the next piece
            content = held.rstrip()
            yield md(content)
            held = held[len(content) :]  # trailing space waits: the notice may follow it
        elif isinstance(event, Done):
            done.append(event.answer)
    body = done[-1].body if done else ""
    rest = held.strip()
    if rest and rest != SAFETY_NOTICE and not rest.endswith(SAFETY_NOTICE):
        yield md(held)
    elif rest.endswith(SAFETY_NOTICE) and rest != SAFETY_NOTICE and body:
        yield md(held[: held.rfind(SAFETY_NOTICE)].rstrip())


# -- the page -------------------------------------------------------------------------------------


def welcome(assistant: Assistant) -> None:
    """What an empty chat shows: who this is for, what the sources cover, three examples."""
    with st.chat_message("assistant"):
        topics = "\n".join(f"- {t[:1].upper()}{t[1:]}" for t in assistant.topics())
        titles = ", ".join(f"*{md(d['title'])}*" for d in assistant.sources())
        st.markdown(
            "Hello! I answer questions about proximal hamstring tendinopathy (high hamstring "
            "tendon pain) from a small set of sources, and I quote them so you can check what they "
            f"say. They cover:\n\n{topics}\n\nSources: {titles}.\n\n"
            "If you describe warning signs, such as numbness or problems controlling your bladder, "
            "I will tell you to seek care instead."
        )
        st.markdown("**Try asking:**")
        for i, example in enumerate(EXAMPLES):
            st.button(example, key=f"example-{i}", on_click=queue, args=(example,), width="stretch")


def queue(question: str) -> None:
    st.session_state["pending"] = question


def new_conversation() -> None:
    st.session_state["turns"] = []
    st.session_state.pop("pending", None)


def footer(settings: Settings) -> None:
    st.divider()
    st.caption(f"**Please note:** {SAFETY_NOTICE}")
    if settings.feedback_enabled:
        kept = "your rating, comment and the sources cited"
        if settings.log_questions:
            kept += ", with your question"
        st.caption(f"Privacy: your conversation is not stored. If you rate a reply, {kept} are saved.")
    else:
        st.caption("Privacy: nothing you type is stored; the conversation ends when you close this tab.")


def main() -> None:
    st.set_page_config(page_title="PHT Assistant", page_icon="🦵", layout="centered")
    st.html(STYLE)
    settings = get_settings()
    st.title("PHT Assistant")
    st.caption("Questions and answers about proximal hamstring tendinopathy (high hamstring tendon pain).")

    try:
        assistant = load_assistant(str(settings.data_dir))
    except AssistantError as exc:
        st.warning(str(exc), icon=ICON["error"])
        st.caption(SAFETY_NOTICE)
        return
    except Exception as exc:  # an unreachable store, a broken install: one sentence, no traceback
        log.error("assistant failed to start: %s", type(exc).__name__)
        st.warning(START_ERROR, icon=ICON["error"])
        st.caption(SAFETY_NOTICE)
        return

    turns: list[dict] = st.session_state.setdefault("turns", [])
    typed = st.chat_input("Ask a question about PHT…", max_chars=assistant.settings.max_question_chars)
    question = typed or st.session_state.pop("pending", None)

    if turns or question:
        st.button("New conversation", icon=":material/add_comment:", on_click=new_conversation)
    else:
        welcome(assistant)

    for turn in turns:
        with st.chat_message("user"):
            st.markdown(plain(turn["question"]))
        with st.chat_message("assistant"):
            show_reply(assistant, turn, settings)

    if question:
        with st.chat_message("user"):
            st.markdown(plain(question))
        with st.chat_message("assistant"):
            turn, streamed = stream_reply(assistant, question, turns)
            turns.append(turn)
            show_reply(assistant, turn, settings, streamed=streamed)

    footer(settings)


if __name__ == "__main__":  # how `streamlit run` (and AppTest) runs the page
    st.set_option("client.showErrorDetails", "none")  # a patient never sees a traceback
    main()
