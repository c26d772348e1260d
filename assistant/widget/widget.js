/*! PHT Assistant widget: one tag on a clinic's site (docs/widget.md).
 * <script src="https://ASSISTANT-HOST/widget.js" data-key="pht_pk_..." async></script>
 * No framework. Everything lives in a Shadow DOM styled by constructed stylesheets (no inline
 * style or script, so a strict Content-Security-Policy needs only the assistant's origin for
 * script-src and connect-src). Nothing is stored on the host site but this tab's conversation, in
 * sessionStorage; no cookies. */
(() => {
  "use strict";
  if (window.PHTAssistant && window.PHTAssistant.version) return; // the tag was pasted twice

  const tag = document.currentScript || document.querySelector('script[src*="/widget.js"]');
  const DEFAULT_ACCENT = "#0b7285";

  // -- labels, by language (data-lang); init({labels: {...}}) overrides single ones -------------
  const LABELS = {
    en: {
      launcher: "Ask us", open: "Open the chat", close: "Close the chat", restart: "New conversation",
      title: "Hamstring tendinopathy questions",
      greeting: "Hello! Ask me about proximal hamstring tendinopathy and getting back to running. I answer from reviewed sources and show where each answer comes from.",
      conversation: "Conversation", question: "Your question", placeholder: "Type your question…", send: "Send",
      you: "You said:", bot: "The assistant said:", sources: "Sources", source: "Source", urgent: "Urgent",
      thinking: "Looking in the sources…", helpful: "Was this helpful?", yes: "Yes", no: "No",
      comment: "Anything to add? (optional)", sendComment: "Send", thanks: "Thank you for your feedback.",
      feedbackFailed: "Your feedback could not be sent; please try again.",
      offline: "You seem to be offline; check your connection and ask again.",
      unreachable: "The assistant could not be reached; please check your connection and try again.",
      busy: "Many questions are being asked just now; please try again in {s} seconds.",
      unavailable: "The assistant is not available just now; please try again in a minute.",
      slow: "The answer took too long; please try again.",
      refused: "The assistant is not set up for this page; please let the clinic know.",
      interrupted: "The answer was interrupted; please ask again.",
      failed: "Something went wrong; please try again.",
    },
    de: {
      launcher: "Fragen Sie uns", open: "Chat öffnen", close: "Chat schließen", restart: "Neues Gespräch",
      title: "Fragen zur Hamstring-Tendinopathie",
      greeting: "Hallo! Fragen Sie mich zur proximalen Hamstring-Tendinopathie und zum Wiedereinstieg ins Laufen. Ich antworte aus geprüften Quellen und zeige, woher jede Antwort stammt.",
      conversation: "Gespräch", question: "Ihre Frage", placeholder: "Ihre Frage…", send: "Senden",
      you: "Sie:", bot: "Der Assistent:", sources: "Quellen", source: "Quelle", urgent: "Dringend",
      thinking: "Suche in den Quellen…", helpful: "War das hilfreich?", yes: "Ja", no: "Nein",
      comment: "Möchten Sie etwas ergänzen? (optional)", sendComment: "Senden", thanks: "Danke für Ihre Rückmeldung.",
      feedbackFailed: "Ihre Rückmeldung konnte nicht gesendet werden; bitte versuchen Sie es erneut.",
      offline: "Sie scheinen offline zu sein; prüfen Sie die Verbindung und fragen Sie erneut.",
      unreachable: "Der Assistent ist nicht erreichbar; bitte prüfen Sie die Verbindung und versuchen Sie es erneut.",
      busy: "Gerade werden sehr viele Fragen gestellt; bitte versuchen Sie es in {s} Sekunden erneut.",
      unavailable: "Der Assistent ist gerade nicht verfügbar; bitte versuchen Sie es in einer Minute erneut.",
      slow: "Die Antwort hat zu lange gedauert; bitte versuchen Sie es erneut.",
      refused: "Der Assistent ist für diese Seite nicht eingerichtet; bitte sagen Sie der Praxis Bescheid.",
      interrupted: "Die Antwort wurde unterbrochen; bitte fragen Sie erneut.",
      failed: "Etwas ist schiefgegangen; bitte versuchen Sie es erneut.",
    },
    fr: {
      launcher: "Posez-nous une question", open: "Ouvrir la discussion", close: "Fermer la discussion",
      restart: "Nouvelle conversation", title: "Questions sur la tendinopathie des ischio-jambiers",
      greeting: "Bonjour ! Posez-moi vos questions sur la tendinopathie proximale des ischio-jambiers et la reprise de la course. Je réponds à partir de sources vérifiées et j'indique d'où vient chaque réponse.",
      conversation: "Conversation", question: "Votre question", placeholder: "Votre question…", send: "Envoyer",
      you: "Vous :", bot: "L'assistant :", sources: "Sources", source: "Source", urgent: "Urgent",
      thinking: "Recherche dans les sources…", helpful: "Cette réponse vous a-t-elle aidé ?", yes: "Oui", no: "Non",
      comment: "Un commentaire ? (facultatif)", sendComment: "Envoyer", thanks: "Merci pour votre avis.",
      feedbackFailed: "Votre avis n'a pas pu être envoyé ; veuillez réessayer.",
      offline: "Vous semblez hors ligne ; vérifiez votre connexion et posez à nouveau la question.",
      unreachable: "L'assistant est injoignable ; vérifiez votre connexion et réessayez.",
      busy: "Beaucoup de questions sont posées en ce moment ; réessayez dans {s} secondes.",
      unavailable: "L'assistant n'est pas disponible pour le moment ; réessayez dans une minute.",
      slow: "La réponse a pris trop de temps ; veuillez réessayer.",
      refused: "L'assistant n'est pas configuré pour cette page ; merci de prévenir le cabinet.",
      interrupted: "La réponse a été interrompue ; posez à nouveau la question.",
      failed: "Une erreur s'est produite ; veuillez réessayer.",
    },
    es: {
      launcher: "Pregúntenos", open: "Abrir el chat", close: "Cerrar el chat", restart: "Nueva conversación",
      title: "Preguntas sobre la tendinopatía de isquiotibiales",
      greeting: "¡Hola! Pregúnteme sobre la tendinopatía proximal de los isquiotibiales y la vuelta a correr. Respondo a partir de fuentes revisadas e indico de dónde sale cada respuesta.",
      conversation: "Conversación", question: "Su pregunta", placeholder: "Escriba su pregunta…", send: "Enviar",
      you: "Usted:", bot: "El asistente:", sources: "Fuentes", source: "Fuente", urgent: "Urgente",
      thinking: "Buscando en las fuentes…", helpful: "¿Le ha sido útil?", yes: "Sí", no: "No",
      comment: "¿Algo que añadir? (opcional)", sendComment: "Enviar", thanks: "Gracias por su opinión.",
      feedbackFailed: "No se pudo enviar su opinión; inténtelo de nuevo.",
      offline: "Parece que no tiene conexión; compruébela y vuelva a preguntar.",
      unreachable: "No se pudo contactar con el asistente; compruebe su conexión e inténtelo de nuevo.",
      busy: "Ahora mismo se están haciendo muchas preguntas; inténtelo de nuevo en {s} segundos.",
      unavailable: "El asistente no está disponible en este momento; inténtelo de nuevo en un minuto.",
      slow: "La respuesta tardó demasiado; inténtelo de nuevo.",
      refused: "El asistente no está configurado para esta página; por favor, avise a la clínica.",
      interrupted: "La respuesta se interrumpió; vuelva a preguntar.",
      failed: "Algo salió mal; inténtelo de nuevo.",
    },
  };

  // -- the stylesheet (constructed, adopted by the shadow root) -----------------------------------
  const CSS = `
:host{all:initial!important;display:block!important;position:static!important;visibility:visible!important;opacity:1!important;direction:ltr!important;transform:none!important;filter:none!important}
.root{--ink:#1b1f24;--muted:#4a5360;--line:#d0d6de;--soft:#f3f5f8;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink);text-align:left;-webkit-text-size-adjust:100%;text-size-adjust:100%}
.root *,.root *::before,.root *::after{box-sizing:border-box;letter-spacing:normal;text-transform:none;text-shadow:none}
[hidden]{display:none!important}
.sr{position:absolute!important;width:1px!important;height:1px!important;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
button,textarea{font-family:inherit;font-size:inherit;line-height:inherit;color:inherit;margin:0}
button{cursor:pointer}
:focus-visible{outline:3px solid var(--accent-text);outline-offset:2px}
.head :focus-visible{outline-color:currentColor}
svg{display:block;flex:none}
.launcher{position:fixed;z-index:2147483000;bottom:20px;right:20px;display:flex;align-items:center;gap:8px;min-height:48px;max-width:calc(100vw - 40px);padding:0 20px 0 16px;border:0;border-radius:24px;background:var(--accent);color:var(--on-accent);font-size:16px;font-weight:600;box-shadow:0 4px 14px rgba(0,0,0,.28)}
.left .launcher{right:auto;left:20px}
.launcher svg{width:22px;height:22px}
.panel{position:fixed;z-index:2147483001;bottom:84px;right:20px;width:390px;max-width:calc(100vw - 40px);height:620px;max-height:calc(100vh - 104px);max-height:calc(100dvh - 104px);display:flex;flex-direction:column;background:#fff;border:1px solid var(--line);border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.3);overflow:hidden}
.left .panel{right:auto;left:20px}
.head{display:flex;align-items:center;gap:8px;padding:8px 6px 8px 14px;background:var(--accent);color:var(--on-accent)}
.head img{height:30px;width:auto;max-width:110px;object-fit:contain;background:#fff;border-radius:4px;padding:2px}
.head h2{flex:1;margin:0;font-size:16px;font-weight:650;line-height:1.3;color:inherit;outline-offset:-2px}
.icon{display:flex;align-items:center;justify-content:center;width:40px;height:40px;padding:0;border:0;border-radius:8px;background:transparent;color:inherit}
.icon:hover{background:rgba(127,127,127,.25)}
.icon svg{width:20px;height:20px}
.log{flex:1;min-height:0;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:12px;background:var(--soft);overscroll-behavior:contain}
.msg{max-width:94%;padding:10px 12px;border-radius:12px;background:#fff;border:1px solid var(--line);overflow-wrap:anywhere}
.msg p{margin:0 0 8px}.msg p:last-child{margin-bottom:0}
.me{align-self:flex-end;background:var(--accent);color:var(--on-accent);border-color:transparent;white-space:pre-wrap}
.bot{align-self:flex-start}
.body blockquote{margin:0 0 8px;padding:2px 0 2px 10px;border-left:3px solid var(--accent)}
.body ul,.body ol{margin:0 0 8px;padding-left:22px}
.mark{display:inline;border:0;background:none;padding:0 1px;color:var(--accent-text);font-weight:600;text-decoration:underline;font-size:inherit}
.sources{margin-top:10px;padding-top:6px;border-top:1px solid var(--line)}
.sources h3{margin:0 0 2px;font-size:13px;font-weight:650;color:var(--muted)}
details{margin:2px 0}
summary{cursor:pointer;padding:3px 0;font-size:14px;color:var(--accent-text)}
details blockquote{margin:4px 0 6px;padding:6px 10px;border-left:3px solid var(--accent);background:var(--soft);font-size:14px}
.msg .notice{margin:10px 0 0;padding-top:8px;border-top:1px solid var(--line);font-size:13px;line-height:1.45;color:var(--muted)}
.urgent{border:2px solid #b3261e;background:#fdecea;max-width:100%}
.urgent .notice{color:#5c2b29;border-color:#e3a29d}
.alert-h{display:flex;align-items:center;gap:6px;margin:0 0 6px;font-size:16px;font-weight:700;color:#8c1d18}
.alert-h svg{width:20px;height:20px}
.urgent .body{color:#410e0b}
.error{border:1px solid #b26a00;background:#fff8e6}
.thinking{color:var(--muted);font-style:italic}
.rate{display:flex;flex-wrap:wrap;align-items:center;gap:6px;margin-top:10px;font-size:14px;color:var(--muted)}
.rate button{display:flex;align-items:center;gap:5px;min-height:32px;padding:2px 12px;border:1px solid var(--line);border-radius:16px;background:#fff;color:var(--ink);font-size:14px}
.rate button[aria-pressed=true]{background:var(--accent);border-color:var(--accent);color:var(--on-accent)}
.rate svg{width:16px;height:16px}
.rate label{flex-basis:100%}
.rate textarea{flex:1;min-height:40px;padding:6px 8px;border:1px solid #8a94a3;border-radius:8px;font-size:16px;resize:vertical;background:#fff;color:var(--ink)}
.ask{display:flex;gap:8px;align-items:flex-end;padding:10px;border-top:1px solid var(--line);background:#fff}
.ask textarea{flex:1;min-height:44px;max-height:120px;field-sizing:content;padding:10px 12px;border:1px solid #8a94a3;border-radius:10px;font-size:16px;line-height:1.4;resize:none;background:#fff;color:var(--ink)}
.send{display:flex;align-items:center;justify-content:center;width:44px;height:44px;padding:0;border:0;border-radius:10px;background:var(--accent);color:var(--on-accent)}
.send svg{width:20px;height:20px}
.send:disabled{opacity:.55;cursor:default}
@media (max-width:520px){
.root .panel{left:0;right:0;bottom:auto;top:var(--vvt,0px);width:100%;max-width:none;height:100vh;height:100dvh;height:var(--vvh,100dvh);max-height:none;border:0;border-radius:0}
.open .launcher{display:none}
.root .launcher{bottom:16px;right:16px}.root.left .launcher{left:16px;right:auto}
}
@media (prefers-reduced-motion:no-preference){.panel{animation:pht-in .16s ease-out}@keyframes pht-in{from{opacity:0;transform:translateY(8px)}}}
`;

  // -- small helpers ------------------------------------------------------------------------------
  const h = (name, attrs, ...kids) => {
    const el = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
    return el;
  };
  const ICONS = {
    chat: "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.5 4v-4A2.5 2.5 0 0 1 3 13.5z",
    close: "M6 6l12 12M18 6L6 18",
    send: "M4 12l16-8-6 16-2.5-6.5z",
    restart: "M4 4v6h6M5.5 15a7 7 0 1 0 1.6-8.2L4 10",
    alert: "M12 3l10 18H2zM12 10v5M12 17.5v.5",
    thumb: "M7 11v9H3.5v-9zM7 11l3.5-7.5c1.6 0 2.6 1.1 2.3 2.7L12.2 10h5.6a2 2 0 0 1 2 2.4l-1.3 6A2 2 0 0 1 16.5 20H7",
  };
  const icon = (name, filled, turn) => {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    if (turn) svg.setAttribute("transform", "rotate(180)");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", filled ? "currentColor" : "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", filled ? "1" : "2.2");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
    return svg;
  };
  const rgb = (colour) => {
    const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(colour || "").trim());
    if (!m) return null;
    const s = m[1].length === 3 ? m[1].replace(/./g, "$&$&") : m[1];
    return [0, 2, 4].map((i) => parseInt(s.slice(i, i + 2), 16));
  };
  const luminance = (c) =>
    c
      .map((v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
      .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const contrast = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const hex = (c) => "#" + c.map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  // The accent, readable text on it (white or near-black) and a shade of it readable on white.
  const themeCss = (accent) => {
    const a = rgb(accent) || rgb(DEFAULT_ACCENT);
    const white = [255, 255, 255];
    const on = contrast(a, white) >= 4.5 ? "#fff" : "#111";
    let text = a;
    while (contrast(text, white) < 4.5) text = text.map((v) => v * 0.85);
    return `.root{--accent:${hex(a)};--on-accent:${on};--accent-text:${hex(text)}}`;
  };
  const store = {
    get(k) {
      try {
        return JSON.parse(sessionStorage.getItem(k) || "null");
      } catch (e) {
        return null;
      }
    },
    set(k, v) {
      try {
        sessionStorage.setItem(k, JSON.stringify(v));
      } catch (e) {
        /* storage off or full: the conversation lives until the page closes */
      }
    },
    drop(k) {
      try {
        sessionStorage.removeItem(k);
      } catch (e) {
        /* nothing stored */
      }
    },
  };
  const sheetFor = (root) => {
    // a constructed stylesheet where the browser has them; a <style> element otherwise
    if ("adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
      return (css) => sheet.replaceSync(css);
    }
    const style = h("style");
    root.append(style);
    return (css) => (style.textContent = css);
  };

  // -- Markdown, the few forms answers use, built as nodes (never as HTML) -----------------------
  const inline = (text, into, onMark) => {
    const re = /\*\*(.+?)\*\*|\*([^*\s][^*]*?)\*|\[(\d{1,2})\]/g;
    let at = 0;
    for (let m; (m = re.exec(text)); ) {
      if (m.index > at) into.append(text.slice(at, m.index));
      if (m[1] != null) into.append(h("strong", { text: m[1] }));
      else if (m[2] != null) into.append(h("em", { text: m[2] }));
      else into.append(onMark ? onMark(Number(m[3])) || m[0] : m[0]);
      at = re.lastIndex;
    }
    if (at < text.length) into.append(text.slice(at));
  };
  const markdown = (text, onMark) => {
    const out = document.createDocumentFragment();
    let block = null;
    let kind = "";
    const start = (k, el) => {
      kind = k;
      block = el;
      out.append(el);
    };
    for (const raw of text.split("\n")) {
      const line = raw.trimEnd();
      let m;
      if (!line.trim()) {
        kind = "";
        continue;
      }
      if ((m = /^\s*>\s?(.*)$/.exec(line))) {
        if (kind !== "quote") start("quote", h("blockquote"));
        else block.append(" ");
        inline(m[1], block, onMark);
      } else if ((m = /^\s*[-*•]\s+(.*)$/.exec(line)) || (m = /^\s*\d+[.)]\s+(.*)$/.exec(line))) {
        const ordered = /^\s*\d/.test(line);
        if (kind !== (ordered ? "ol" : "ul")) start(ordered ? "ol" : "ul", h(ordered ? "ol" : "ul"));
        const li = h("li");
        inline(m[1], li, onMark);
        block.append(li);
      } else if ((m = /^#{1,6}\s+(.*)$/.exec(line))) {
        start("", h("p"));
        const strong = h("strong");
        inline(m[1], strong, onMark);
        block.append(strong);
      } else {
        if (kind !== "p") start("p", h("p"));
        else block.append(h("br"));
        inline(line, block, onMark);
      }
    }
    return out;
  };

  // -- talking to the API -------------------------------------------------------------------------
  class Failure extends Error {
    constructor(kind, seconds, message) {
      super(kind);
      this.kind = kind;
      this.seconds = seconds;
      this.serverMessage = message;
    }
  }
  const failureOf = async (res) => {
    let message = "";
    try {
      message = (await res.json()).message || "";
    } catch (e) {
      /* not JSON */
    }
    const kinds = { 401: "refused", 403: "refused", 422: "invalid", 429: "busy", 503: "unavailable", 504: "slow" };
    return new Failure(kinds[res.status] || "failed", Number(res.headers.get("Retry-After")) || 30, message);
  };
  // Server-sent events from a fetch body, handed on one by one as they arrive.
  const readEvents = async (body, on) => {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done }).replace(/\r\n/g, "\n");
      for (let i; (i = buffer.indexOf("\n\n")) >= 0; ) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) on(name, JSON.parse(data.join("\n")));
      }
      if (done) return;
    }
  };

  // -- one widget on the page ---------------------------------------------------------------------
  const mount = (opts) => {
    const key = String(opts.key || "").trim();
    const apiBase = String(opts.api || (tag && tag.src ? new URL(tag.src, location.href).origin : "")).replace(/\/+$/, "");
    const lang = String(opts.lang || "en").toLowerCase().split("-")[0];
    const L = Object.assign({}, LABELS.en, LABELS[lang] || {}, opts.labels || {});
    const keyId = (/^pht_pk_([0-9a-f]+)_/.exec(key) || [, "x"])[1];
    const convKey = `pht-assistant:${keyId}`;
    const cfgKey = `pht-assistant:settings:${keyId}`;
    const saved = store.get(convKey) || {};
    let msgs = Array.isArray(saved.msgs) ? saved.msgs : [];
    let cfg = null;
    let busy = false;
    let opened = false;
    let stopped = false;
    const listeners = [];
    const listen = (target, type, fn, o) => {
      target.addEventListener(type, fn, o);
      listeners.push(() => target.removeEventListener(type, fn, o));
    };

    if (!/^pht_pk_/.test(key)) {
      console.warn(
        "PHT Assistant: the tag needs data-key with the clinic's publishable key (pht_pk_...); a secret key must never be put in a web page."
      );
      return null;
    }
    const host = h("pht-assistant");
    const shadow = host.attachShadow({ mode: "open" });
    sheetFor(shadow)(CSS);
    const setTheme = sheetFor(shadow);
    const setViewport = sheetFor(shadow);
    const root = h("div", { class: "root" + (opts.position === "left" ? " left" : ""), lang });
    shadow.append(root);

    const call = (path, init) =>
      fetch(apiBase + path, {
        ...init,
        mode: "cors",
        credentials: "omit",
        headers: { Authorization: `Bearer ${key}`, ...(init && init.headers) },
      });
    const save = () => store.set(convKey, { msgs: msgs.slice(-60), open: opened });

    // The launcher and the panel.
    const launcherText = h("span");
    const launcher = h("button", { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": "pht-panel" }, icon("chat", true), launcherText);
    const title = h("h2", { id: "pht-title", tabindex: "-1" });
    const logo = h("img", { alt: "", hidden: true, referrerpolicy: "no-referrer" });
    listen(logo, "error", () => (logo.hidden = true));
    const restart = h("button", { type: "button", class: "icon", "aria-label": L.restart, title: L.restart }, icon("restart"));
    const close = h("button", { type: "button", class: "icon", "aria-label": L.close, title: L.close }, icon("close"));
    const log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": L.conversation, tabindex: "0" });
    const input = h("textarea", { id: "pht-q", rows: "1", placeholder: L.placeholder, autocomplete: "off", enterkeyhint: "send" });
    const sendBtn = h("button", { type: "submit", class: "send", "aria-label": L.send, title: L.send }, icon("send", true));
    const form = h("form", { class: "ask" }, h("label", { for: "pht-q", class: "sr", text: L.question }), input, sendBtn);
    const panel = h(
      "section",
      { class: "panel", id: "pht-panel", role: "dialog", "aria-labelledby": "pht-title", hidden: true },
      h("div", { class: "head" }, logo, title, restart, close),
      log,
      form
    );
    root.append(launcher, panel);

    const notice = (text) => h("p", { class: "notice", text: text || (cfg && cfg.safety_notice) || "" });
    const scrollDown = () => (log.scrollTop = log.scrollHeight);

    // What the patient typed.
    const userView = (m) => h("div", { class: "msg me" }, h("span", { class: "sr", text: L.you + " " }), m.text);

    // An answer: its text (citation markers open their source), sources with their quotes, the
    // rating, the notice. Urgent answers are an alert with the clinic's emergency wording.
    const botView = (m) => {
      const el = h("div", { class: "msg bot" });
      const body = h("div", { class: "body" });
      const sources = h("div", { class: "sources", hidden: true });
      const tail = h("div");
      const box = h("div", {}, body);
      el.append(h("span", { class: "sr", text: L.bot + " " }), box, sources, tail);
      const byN = {};
      const paint = () => {
        const noticeText = m.notice || (cfg && cfg.safety_notice) || "";
        let text = m.text || "";
        const cut = noticeText ? text.indexOf(noticeText.slice(0, 40)) : -1;
        if (cut >= 0) text = text.slice(0, cut);
        if (m.status === "urgent" && !el.classList.contains("urgent")) {
          el.classList.add("urgent");
          box.setAttribute("role", "alert");
          box.prepend(h("p", { class: "alert-h" }, icon("alert"), L.urgent));
        }
        body.classList.toggle("thinking", !text.trim() && !m.done);
        body.replaceChildren(
          text.trim()
            ? markdown(text.trim(), (n) =>
                byN[n]
                  ? h("button", { type: "button", class: "mark", "aria-label": `${L.source} ${n}`, onclick: () => reveal(n) }, `[${n}]`)
                  : null
              )
            : m.done
              ? ""
              : L.thinking
        );
      };
      const reveal = (n) => {
        const d = byN[n];
        if (!d) return;
        d.open = true;
        d.querySelector("summary").focus();
      };
      const showSources = () => {
        const list = m.citations || [];
        sources.hidden = !list.length;
        sources.replaceChildren(h("h3", { text: L.sources }));
        for (const c of list) {
          const d = h("details", {}, h("summary", { text: `[${c.n}] ${c.title}` }), h("blockquote", { text: c.quote }));
          byN[c.n] = d;
          sources.append(d);
        }
      };
      const finish = () => {
        showSources();
        paint();
        tail.replaceChildren();
        if (m.status !== "urgent" && cfg && cfg.feedback && m.id) tail.append(rating(m));
        tail.append(notice(m.notice));
      };
      if (m.done) finish();
      else paint();
      return { el, paint, showSources, finish };
    };

    // Thumbs up or down, then an optional comment; sent to POST /v1/feedback.
    const rating = (m) => {
      const row = h("div", { class: "rate" });
      const status = h("span", { role: "status" });
      const question = () => {
        if (!cfg.feedback_questions) return undefined;
        const i = msgs.indexOf(m);
        for (let j = i - 1; j >= 0; j--) if (msgs[j].role === "user") return msgs[j].text;
        return undefined;
      };
      const send = (extra) =>
        call("/v1/feedback", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ answer_id: m.id, rating: m.rating, question: question(), ...extra }),
        }).then((res) => {
          if (!res.ok) throw new Error(String(res.status));
        });
      const buttons = ["up", "down"].map((r) =>
        h(
          "button",
          {
            type: "button",
            "aria-pressed": String(m.rating === r),
            onclick: async () => {
              m.rating = r;
              save();
              buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(["up", "down"][i] === r)));
              try {
                await send({});
                status.textContent = "";
                if (!row.querySelector("textarea") && !m.commented) row.append(commentBox());
              } catch (e) {
                status.textContent = L.feedbackFailed;
              }
            },
          },
          icon("thumb", false, r === "down"),
          r === "up" ? L.yes : L.no
        )
      );
      const commentBox = () => {
        const id = `pht-c-${m.id}`;
        const box = h("textarea", { id, rows: "2", maxlength: "2000" });
        const wrap = h(
          "form",
          {
            class: "rate",
            onsubmit: async (e) => {
              e.preventDefault();
              if (!box.value.trim()) return;
              try {
                await send({ comment: box.value.trim() });
                m.commented = true;
                save();
                wrap.replaceWith();
                status.textContent = L.thanks;
              } catch (err) {
                status.textContent = L.feedbackFailed;
              }
            },
          },
          h("label", { for: id, text: L.comment }),
          box,
          h("button", { type: "submit", text: L.sendComment })
        );
        status.textContent = L.thanks;
        return wrap;
      };
      row.append(h("span", { text: L.helpful }), ...buttons, status);
      if (m.commented) status.textContent = L.thanks;
      return row;
    };

    // A problem, said in one sentence, with the notice.
    const errorView = (m) => h("div", { class: "msg bot error" }, h("p", { text: m.text }), notice());
    const view = (m) => (m.role === "user" ? userView(m) : m.role === "error" ? errorView(m) : botView(m).el);
    const greeting = () => h("div", { class: "msg bot" }, h("p", { text: opts.greeting || L.greeting }), notice());
    const paintLog = () => {
      log.replaceChildren(greeting(), ...msgs.map(view));
      scrollDown();
    };

    const sentence = (err) => {
      if (!(err instanceof Failure)) return navigator.onLine === false ? L.offline : L.unreachable;
      if (err.kind === "busy") return L.busy.replace("{s}", String(err.seconds));
      if (err.kind === "invalid") return err.serverMessage || L.failed;
      return L[err.kind] || L.failed;
    };

    // The conversation so far, as the API takes it: answered turns only, the notice left out.
    const history = () => {
      const turns = [];
      for (let i = 0; i + 1 < msgs.length; i++) {
        const q = msgs[i];
        const a = msgs[i + 1];
        if (q.role === "user" && a.role === "assistant") {
          const n = a.notice || "";
          const idx = n ? a.text.indexOf(n) : -1;
          turns.push({ role: "user", content: q.text }, { role: "assistant", content: (idx >= 0 ? a.text.slice(0, idx) : a.text).trim() });
        }
      }
      return turns.slice(-20);
    };

    const ask = async (question) => {
      busy = true;
      sendBtn.disabled = true;
      const turns = history();
      const q = { role: "user", text: question };
      msgs.push(q);
      save();
      log.append(userView(q));
      const m = { role: "assistant", text: "", status: null, citations: [] };
      const v = botView(m);
      log.append(v.el);
      log.setAttribute("aria-busy", "true"); // announced once complete, not piece by piece
      scrollDown();
      let frame = 0;
      const later = () => {
        if (frame) return;
        frame = requestAnimationFrame(() => {
          frame = 0;
          v.paint();
          scrollDown();
        });
      };
      const timer = new AbortController();
      const timeout = setTimeout(() => timer.abort(), 90000);
      try {
        const res = await call("/v1/ask/stream", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify({ question, history: turns.length ? turns : undefined }),
          signal: timer.signal,
        });
        if (!res.ok) throw await failureOf(res);
        await readEvents(res.body, (name, data) => {
          if (name === "status") Object.assign(m, { status: data.status, id: data.id });
          else if (name === "text") m.text += data.text;
          else if (name === "citations") {
            m.citations = data.citations;
            v.showSources();
          } else if (name === "done") {
            Object.assign(m, {
              id: data.id,
              status: data.status,
              text: data.text,
              notice: data.safety_notice,
              citations: (data.citations || []).map((c) => ({ n: c.n, title: c.title, quote: c.quote, source: c.source })),
              done: true,
            });
          }
          if (name === "status" || name === "text") later();
        });
        if (!m.done) throw new Failure("interrupted");
        cancelAnimationFrame(frame);
        frame = 0;
        msgs.push(m);
        v.finish();
        save();
      } catch (err) {
        cancelAnimationFrame(frame);
        frame = 0;
        const e = { role: "error", text: sentence(err.name === "AbortError" ? new Failure("slow") : err) };
        msgs.push(e);
        save();
        v.el.replaceWith(errorView(e)); // a half-written answer is not left standing
      } finally {
        clearTimeout(timeout);
        log.removeAttribute("aria-busy");
        scrollDown();
        busy = false;
        sendBtn.disabled = false;
      }
    };

    // Opening, closing, the keyboard, the phone's viewport.
    // On a phone the panel covers the visual viewport, the part above the on-screen keyboard, so
    // the question box stays in view; the newest message stays in view as the keyboard opens.
    const fit = () => {
      const vv = window.visualViewport;
      if (!vv) return;
      setViewport(`.root{--vvh:${Math.round(vv.height)}px;--vvt:${Math.round(vv.offsetTop)}px}`);
    };
    const setOpen = (open, focus) => {
      opened = open;
      panel.hidden = !open;
      root.classList.toggle("open", open);
      launcher.setAttribute("aria-expanded", String(open));
      save();
      if (open) {
        fit();
        scrollDown();
        if (focus) (matchMedia("(pointer: coarse)").matches ? title : input).focus();
      } else if (focus) launcher.focus();
    };
    listen(launcher, "click", () => setOpen(!opened, true));
    listen(close, "click", () => setOpen(false, true));
    listen(restart, "click", () => {
      if (busy) return;
      msgs = [];
      save();
      paintLog();
      input.focus();
    });
    listen(root, "keydown", (e) => {
      if (e.key === "Escape" && opened) {
        e.stopPropagation();
        setOpen(false, true);
      }
    });
    listen(input, "keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    listen(form, "submit", (e) => {
      e.preventDefault();
      const q = input.value.trim();
      if (!q || busy) return;
      input.value = "";
      ask(q);
    });
    if (window.visualViewport) {
      listen(window.visualViewport, "resize", () => {
        fit();
        if (opened) scrollDown();
      });
      listen(window.visualViewport, "scroll", fit);
    }

    const draw = () => {
      const name = opts.title || cfg.clinic || L.title;
      title.textContent = name;
      launcherText.textContent = opts.label || L.launcher;
      launcher.setAttribute("aria-label", `${launcherText.textContent}: ${name}`);
      setTheme(themeCss(opts.accent || opts.accentColor || cfg.accent_color));
      if (cfg.logo_url && opts.logo !== false) {
        logo.src = cfg.logo_url; // beside the clinic's name, so it says nothing more: alt=""
        logo.hidden = false;
      }
      input.maxLength = cfg.max_question_chars || 2000;
      paintLog();
      if (!host.isConnected) document.body.append(host);
      setOpen(Boolean(saved.open || opts.open), false);
    };
    // The clinic's settings (name, colour, logo) once per tab session; then draw.
    const load = async () => {
      cfg = store.get(cfgKey);
      if (!cfg) {
        try {
          const res = await call("/v1/widget");
          if (!res.ok) throw await failureOf(res);
          cfg = await res.json();
          store.set(cfgKey, cfg);
        } catch (err) {
          if (stopped) return;
          if (navigator.onLine === false) {
            listen(window, "online", load, { once: true });
            return;
          }
          console.warn(
            `PHT Assistant: could not load the clinic's settings from ${apiBase}. If this page is online, check that its origin (${location.origin}) is on the clinic's allowed origins and that data-key is a current publishable key.`
          );
          return;
        }
      }
      if (!stopped) draw();
    };
    load();
    return {
      open: () => cfg && setOpen(true, true),
      close: () => cfg && setOpen(false, true),
      destroy: () => {
        stopped = true;
        listeners.forEach((off) => off());
        host.remove();
      },
    };
  };

  // -- the page's handle: data-* on the tag, window.PHTAssistantConfig, or PHTAssistant.init() -----
  const fromTag = () => {
    const d = (tag && tag.dataset) || {};
    const o = {};
    for (const k of ["key", "api", "position", "accent", "title", "greeting", "lang", "label"]) if (d[k]) o[k] = d[k];
    if (d.open) o.open = d.open === "true";
    return o;
  };
  let options = Object.assign(fromTag(), window.PHTAssistantConfig || {});
  let current = null;
  const start = () => {
    if (current) current.destroy();
    current = options.key ? mount(options) : null;
  };
  window.PHTAssistant = {
    version: "1",
    /** Mount (again) with these options over the tag's: key, api, position ("left"/"right"),
     * accent ("#rrggbb"), title, greeting, label, lang ("en", "de", "fr", "es"), labels, open. */
    init(more) {
      options = Object.assign({}, options, more || {});
      if (document.body) start();
      else document.addEventListener("DOMContentLoaded", start, { once: true });
    },
    open: () => current && current.open(),
    close: () => current && current.close(),
    destroy() {
      if (current) current.destroy();
      current = null;
    },
  };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
  document.dispatchEvent(new CustomEvent("pht-assistant:ready"));
})();
