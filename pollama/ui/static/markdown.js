// A small, safe Markdown renderer for model output. Every piece of the input is HTML-escaped before
// anything else happens; the only tags in the result are the ones this file writes, and the only
// attribute values taken from the input are http(s) link targets (escaped) and code-block language
// names (reduced to [\w+#.-]). Raw HTML in the input is shown as text, never interpreted.
//
// Supported: headings, paragraphs, bold, italic, strikethrough, inline code, fenced code blocks (with a
// language label; an unclosed fence runs to the end, which suits a streaming answer), ordered and
// unordered lists (nested by indentation), block quotes, horizontal rules, simple tables, and links
// ([text](http...) and bare http(s) URLs).

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}&gt;\s?(.*)$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

// Inline spans of already-escaped text. Code spans and links are swapped for placeholders first, so
// that emphasis never reaches into them.
function inline(escaped) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let s = escaped.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, _ticks, code) => hold(`<code>${code.trim() || code}</code>`));
  s = s.replace(/\[([^\]\u0000]+)\]\((https?:\/\/[^\s)\u0000]+)\)/g, (_, label, url) => hold(link(url, emphasis(label))));
  s = s.replace(/\bhttps?:\/\/(?:&amp;|[^\s&\u0000])+/g, (match) => {
    const url = match.replace(/[.,;:!?)\]*_~]+$/, "");
    return hold(link(url, url)) + match.slice(url.length);
  });
  s = emphasis(s);
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => held[+i]);
}

function link(url, label) {
  return `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`;
}

function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>")
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?![*\w])/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
}

function codeBlock(lang, lines) {
  const label = lang ? `<span class="lang">${lang}</span>` : `<span class="lang">code</span>`;
  return (
    `<div class="code-block"><div class="code-head">${label}` +
    `<button type="button" class="copy-code">Copy</button></div>` +
    `<pre><code${lang ? ` data-lang="${lang}"` : ""}>${lines.join("\n")}</code></pre></div>`
  );
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => inline(c.trim()));
}

function table(header, rows) {
  const head = cells(header).map((c) => `<th>${c}</th>`).join("");
  const body = rows.map((r) => `<tr>${cells(r).map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
  return `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}

function indentOf(line) {
  return line.match(/^\s*/)[0].replace(/\t/g, "    ").length;
}

// A list starting at lines[i]: its items (with indented continuation lines, nested lists included,
// rendered recursively) up to the first line that belongs to neither.
function list(lines, i) {
  const first = lines[i].match(ITEM);
  const base = indentOf(first[1]);
  const ordered = /\d/.test(first[2]);
  const start = ordered ? parseInt(first[2], 10) : 1;
  const items = [];
  let current = null;
  for (; i < lines.length; i++) {
    const line = lines[i];
    const m = line.match(ITEM);
    if (m && indentOf(m[1]) === base && /\d/.test(m[2]) === ordered) {
      current = [m[3]];
      items.push(current);
      continue;
    }
    if (!line.trim()) {
      const next = lines.slice(i + 1).find((l) => l.trim());
      if (next !== undefined && indentOf(next) > base) {
        current.push("");
        continue;
      }
      break;
    }
    if (indentOf(line) > base) {
      current.push(line.slice(Math.min(indentOf(line), base + (first[2].length + 1))));
      continue;
    }
    if (m) break; // a sibling of another kind, or a shallower list: ends this one
    current.push(line.trim()); // a lazy continuation of the item's paragraph
  }
  const html = items
    .map((item) => {
      let inner = blocks(item);
      const single = inner.match(/^<p>([\s\S]*?)<\/p>([\s\S]*)$/);
      if (single && !single[2].includes("<p>")) inner = single[1] + single[2];
      return `<li>${inner}</li>`;
    })
    .join("");
  const tag = ordered ? "ol" : "ul";
  return [`<${tag}${ordered && start !== 1 ? ` start="${start}"` : ""}>${html}</${tag}>`, i];
}

// Block structure of escaped lines.
function blocks(lines) {
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(`<p>${inline(para.join("\n")).replace(/\n/g, "<br>")}</p>`);
    para = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    let m;
    if ((m = line.match(FENCE))) {
      flush();
      const fence = m[1];
      const lang = m[2].replace(/[^\w+#.-]/g, "").slice(0, 32);
      const body = [];
      for (i++; i < lines.length && !(lines[i].trim().startsWith(fence[0].repeat(fence.length)) && !lines[i].trim().replace(/[`~]/g, "")); i++) {
        body.push(lines[i]);
      }
      out.push(codeBlock(lang, body));
      i++;
    } else if (!line.trim()) {
      flush();
      i++;
    } else if ((m = line.match(HEADING))) {
      flush();
      out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
      i++;
    } else if (RULE.test(line) && !para.length) {
      flush();
      out.push("<hr>");
      i++;
    } else if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      for (; i < lines.length && (m = lines[i].match(QUOTE)); i++) quoted.push(m[1]);
      out.push(`<blockquote>${blocks(quoted)}</blockquote>`);
    } else if (ITEM.test(line) && !RULE.test(line)) {
      flush();
      const [html, next] = list(lines, i);
      out.push(html);
      i = next;
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      flush();
      const header = line;
      const rows = [];
      for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i++) rows.push(lines[i]);
      out.push(table(header, rows));
    } else {
      para.push(line.trim());
      i++;
    }
  }
  flush();
  return out.join("");
}

export function renderMarkdown(text) {
  const escaped = escapeHtml(String(text ?? "").replace(/\u0000/g, "").replace(/\r\n?/g, "\n"));
  return blocks(escaped.split("\n"));
}
