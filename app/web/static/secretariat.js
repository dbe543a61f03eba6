/* The secretary assistant page: sends a message, reads the answer as JSON lines while it is
   written, shows tool activity compactly, and renders proposed actions as confirmation cards
   (confirm, edit then confirm, refuse). Nothing is loaded from outside; no inline script. */
(function () {
  "use strict";

  var section = document.querySelector("section.chat[data-conversation]");
  if (!section) { return; }
  var id = section.getAttribute("data-conversation");
  var base = "/api/secretariat/c/" + id;
  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var send = document.getElementById("chat-send");
  var status = document.getElementById("chat-status");
  var confirmBox = document.getElementById("chat-confirm");
  var errorBox = document.getElementById("chat-error");
  var retryButton = document.getElementById("chat-retry");
  var budgetLine = document.getElementById("chat-budget");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var i18nNode = document.getElementById("chat-i18n");
  var t = i18nNode ? JSON.parse(i18nNode.textContent) : {};
  var busy = false;
  var lastRetry = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function addMessage(kind, text) {
    var empty = log.querySelector(".chat-empty");
    if (empty) { empty.remove(); }
    var box = el("div", "msg msg-" + kind);
    box.appendChild(el("span", "who", kind === "user" ? t.you : t.assistant));
    var p = el("p", null, text || "");
    box.appendChild(p);
    log.appendChild(box);
    scrollDown();
    return p;
  }

  function addTool(event) {
    var box = el("div", "msg msg-tool" + (event.status === "error" ? " is-error" : ""));
    var details = el("details");
    var summary = el("summary", null, t.tool + " ");
    summary.appendChild(el("code", null, event.name));
    if (event.status === "error") { summary.appendChild(document.createTextNode(" — " + t.tool_error)); }
    details.appendChild(summary);
    details.appendChild(el("p", null, event.summary || ""));
    box.appendChild(details);
    log.appendChild(box);
    scrollDown();
  }

  function setBusy(on) {
    busy = on;
    send.disabled = on;
    section.setAttribute("aria-busy", on ? "true" : "false");
    if (on) { status.textContent = t.thinking; }
  }

  function showError(message, retry) {
    errorBox.hidden = false;
    errorBox.querySelector("p").textContent = message;
    lastRetry = retry;
    retryButton.hidden = !retry;
    if (retry) { retryButton.focus(); }
  }

  function clearError() { errorBox.hidden = true; lastRetry = null; }

  /* POST JSON, then hand each JSON line of the answer to onEvent. */
  function stream(url, body, onEvent) {
    setBusy(true);
    clearError();
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "x-csrf-token": csrf, "Accept": "application/x-ndjson" },
      body: body === null ? "{}" : JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          var detail = data && data.detail;
          throw { message: typeof detail === "string" ? detail : t.offline, http: response.status };
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) {
            if (buffer.trim()) { onEvent(JSON.parse(buffer)); }
            return;
          }
          buffer += decoder.decode(chunk.value, { stream: true });
          var lines = buffer.split("\n");
          buffer = lines.pop();
          lines.forEach(function (line) { if (line.trim()) { onEvent(JSON.parse(line)); } });
          return pump();
        });
      }
      return pump();
    }).finally(function () { setBusy(false); });
  }

  /* The budget line under the box, as the server counted it at the end of the turn. */
  function showBudget(budget) {
    if (!budgetLine) { return; }
    budgetLine.textContent = budget.text;
    if (budget.spent) { budgetLine.setAttribute("role", "alert"); }
    else { budgetLine.removeAttribute("role"); }
  }

  /* Runs one turn: tokens fill the answer bubble, tools show compactly, a proposal shows cards. */
  function runTurn(url, body, typed) {
    var answer = null;
    var failed = false;
    return stream(url, body, function (event) {
      if (event.budget) { showBudget(event.budget); }
      if (event.type === "token") {
        if (!answer) { answer = addMessage("assistant", ""); }
        answer.textContent += event.text;
        scrollDown();
      } else if (event.type === "tool_call") {
        answer = null;
      } else if (event.type === "tool") {
        addTool(event);
      } else if (event.type === "answer") {
        if (!answer && event.text) { answer = addMessage("assistant", event.text); }
        if (answer && event.sources && event.sources.length) {
          answer.parentNode.appendChild(el("p", "sources", t.sources + " " + event.sources.join(", ")));
        }
        status.textContent = t.done;
      } else if (event.type === "confirm") {
        loadCards();
      } else if (event.type === "error") {
        failed = true;
        var retry = event.retry === "resume" ? function () { return runTurn(base + "/retry", null); }
          : function () { input.value = typed || ""; form.requestSubmit(); };
        if (event.retry !== "resume" && typed) { input.value = typed; }
        status.textContent = "";
        showError(document.documentElement.lang === "en" ? event.message_en : event.message, retry);
      }
    }).catch(function (problem) {
      failed = true;
      if (typed) { input.value = typed; }
      status.textContent = "";
      showError(problem && problem.message ? problem.message : t.offline,
        problem && problem.http === 409 ? null : function () { input.value = typed || ""; });
    }).then(function () { return !failed; });
  }

  /* Confirmation cards for the actions waiting for a decision. */
  function loadCards() {
    return fetch(base, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { renderCards(data.pending || []); });
  }

  function renderCards(cards) {
    confirmBox.textContent = "";
    if (!cards.length) { return; }
    var formNode = el("form", "confirm-form");
    formNode.appendChild(el("h2", null, t.confirm_title));
    cards.forEach(function (card, index) {
      var fieldset = el("fieldset", "confirm-card");
      fieldset.appendChild(el("legend", null, card.title));
      var dl = el("dl");
      card.details.forEach(function (pair) {
        dl.appendChild(el("dt", null, pair[0]));
        dl.appendChild(el("dd", null, pair[1]));
      });
      fieldset.appendChild(dl);
      var choices = el("div", "choices");
      choices.setAttribute("role", "radiogroup");
      choices.setAttribute("aria-label", (t.decision_for || "").replace("{title}", card.title));
      [["approve", t.approve], ["edit", t.edit], ["reject", t.reject]].forEach(function (opt, k) {
        var label = el("label");
        var radio = el("input");
        radio.type = "radio";
        radio.name = "decision-" + index;
        radio.value = opt[0];
        if (k === 0) { radio.checked = true; }
        label.appendChild(radio);
        label.appendChild(document.createTextNode(" " + opt[1]));
        choices.appendChild(label);
      });
      fieldset.appendChild(choices);
      var edit = el("div", "edit-fields");
      edit.hidden = true;
      card.fields.forEach(function (f) {
        var label = el("label", null, f.label);
        var field = el("input");
        field.name = "arg-" + index + "-" + f.name;
        field.setAttribute("data-arg", f.name);
        field.setAttribute("data-kind", typeof f.value);
        field.value = f.value === null || f.value === undefined ? "" : String(f.value);
        label.appendChild(field);
        edit.appendChild(label);
      });
      fieldset.appendChild(edit);
      var reason = el("label", "reject-reason", t.reject_reason);
      var reasonInput = el("input");
      reasonInput.name = "reason-" + index;
      reasonInput.maxLength = 500;
      reason.appendChild(reasonInput);
      reason.hidden = true;
      fieldset.appendChild(reason);
      choices.addEventListener("change", function () {
        var value = fieldset.querySelector("input[type=radio]:checked").value;
        edit.hidden = value !== "edit";
        reason.hidden = value !== "reject";
      });
      formNode.appendChild(fieldset);
    });
    var submit = el("button", null, t.send_decisions);
    submit.type = "submit";
    formNode.appendChild(submit);
    formNode.addEventListener("submit", function (e) {
      e.preventDefault();
      if (busy) { return; }
      var decisions = cards.map(function (card, index) {
        var fieldset = formNode.querySelectorAll("fieldset.confirm-card")[index];
        var type = fieldset.querySelector("input[type=radio]:checked").value;
        if (type === "edit") {
          var args = {};
          fieldset.querySelectorAll("[data-arg]").forEach(function (field) {
            var kind = field.getAttribute("data-kind");
            var value = field.value;
            if (kind === "number" && value !== "" && !isNaN(Number(value))) { value = Number(value); }
            else if (kind === "boolean") { value = value === "true" || value === "oui"; }
            args[field.getAttribute("data-arg")] = value;
          });
          return { type: "edit", args: args };
        }
        if (type === "reject") {
          return { type: "reject", message: fieldset.querySelector("input[name^=reason]").value };
        }
        return { type: "approve" };
      });
      confirmBox.textContent = "";
      runTurn(base + "/decisions", { decisions: decisions }).then(function () { input.focus(); });
    });
    confirmBox.appendChild(formNode);
    var first = formNode.querySelector("input[type=radio]");
    if (first) { first.focus(); }
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || busy) { return; }
    addMessage("user", text);
    input.value = "";
    runTurn(base + "/messages", { message: text }, text).then(function (ok) {
      if (ok) { input.focus(); }
    });
  });

  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  retryButton.addEventListener("click", function () {
    if (lastRetry && !busy) { var again = lastRetry; clearError(); again(); }
  });

  if (confirmBox.getAttribute("data-pending") !== "0") { loadCards(); }
  scrollDown();
})();
