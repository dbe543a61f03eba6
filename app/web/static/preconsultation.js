/* Pre-consultation form: autosave each change, keep unsent answers offline, focus management.
   Works on top of plain forms: without this file every step is still a normal POST. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var form = document.querySelector("form[data-autosave]");
  var summary = document.querySelector(".error-summary");
  var title = document.getElementById("page-title");
  if (summary) { summary.focus(); } else if (title && document.querySelector(".patient form")) { title.focus(); }
  if (!form) { return; }

  var url = form.getAttribute("data-autosave");
  var linkCsrf = form.getAttribute("data-link-csrf");
  var queueKey = form.getAttribute("data-queue");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var status = document.getElementById("save-status");
  var urgent = document.getElementById("urgent");
  var urgentList = document.getElementById("urgent-list");
  var lang = document.documentElement.lang === "en" ? "en" : "fr";
  var text = {
    fr: { saving: "Enregistrement…", saved: "Réponse enregistrée.",
          offline: "Hors connexion : vos réponses sont gardées sur cet appareil et seront envoyées dès le retour du réseau.",
          refused: "Réponse non enregistrée : " },
    en: { saving: "Saving…", saved: "Answer saved.",
          offline: "Offline: your answers are kept on this device and will be sent when the network is back.",
          refused: "Answer not saved: " }
  }[lang];
  var timers = {};
  var flushing = false;
  // Typing pauses this long before its answer is sent (a change or leaving the field sends at
  // once): short enough for the urgent box to follow the words, long enough not to send each key.
  var PAUSE_MS = 500;

  function say(message, offline) {
    if (!status) { return; }
    status.textContent = message;
    status.classList.toggle("offline", !!offline);
  }

  function readQueue() {
    try { return JSON.parse(window.localStorage.getItem(queueKey) || "{}") || {}; }
    catch (e) { return {}; }
  }
  function writeQueue(queue) {
    try {
      if (Object.keys(queue).length) { window.localStorage.setItem(queueKey, JSON.stringify(queue)); }
      else { window.localStorage.removeItem(queueKey); }
    } catch (e) { /* storage full or disabled: the form POST still saves */ }
  }

  function valueOf(name) {
    var fields = form.querySelectorAll('[name="' + name + '"]');
    if (!fields.length) { return null; }
    var first = fields[0];
    if (first.type === "checkbox") {
      var list = [];
      fields.forEach(function (f) { if (f.checked) { list.push(f.value); } });
      return list;
    }
    if (first.type === "radio") {
      var chosen = null;
      fields.forEach(function (f) { if (f.checked) { chosen = f.value; } });
      return chosen;
    }
    return first.value;
  }

  function applyValue(name, value) {
    var fields = form.querySelectorAll('[name="' + name + '"]');
    fields.forEach(function (f) {
      if (f.type === "checkbox") { f.checked = Array.isArray(value) && value.indexOf(f.value) >= 0; }
      else if (f.type === "radio") { f.checked = f.value === value; }
      else { f.value = value === null ? "" : value; }
    });
  }

  function showEnabled(enabled) {
    form.querySelectorAll("[data-question]").forEach(function (box) {
      box.classList.toggle("pc-disabled", enabled.indexOf(box.getAttribute("data-question")) < 0);
    });
  }

  /* The server's latest evaluation decides what the box says. Once shown, the box stays until
     the answers are sent: the server then sends its "earlier" reminder, and should it send
     nothing (an older page), the reminder written in the page takes the guidance's place. */
  function showUrgent(messages) {
    if (!urgent || !urgentList) { return; }
    var had = !urgent.hidden;
    if (!messages.length && had) { messages = [urgent.getAttribute("data-earlier")]; }
    var same = messages.length === urgentList.children.length && messages.every(function (m, i) {
      return urgentList.children[i].textContent === m;
    });
    if (same && had === (messages.length > 0)) { return; }  // unchanged: no new announcement
    urgentList.textContent = "";
    messages.forEach(function (m) {
      var li = document.createElement("li");
      li.textContent = m;
      urgentList.appendChild(li);
    });
    urgent.hidden = messages.length === 0;
    if (!had && messages.length) { urgent.scrollIntoView({ block: "nearest" }); }
  }

  function send(answers) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "content-type": "application/json",
        "accept": "application/json",
        "x-csrf-token": meta ? meta.content : "",
        "x-link-csrf": linkCsrf
      },
      body: JSON.stringify({ answers: answers })
    });
  }

  function flush() {
    var queue = readQueue();
    var names = Object.keys(queue);
    if (!names.length || flushing) { return; }
    flushing = true;
    say(text.saving, false);
    send(queue).then(function (response) {
      return response.json().then(function (body) { return { response: response, body: body }; });
    }).then(function (result) {
      flushing = false;
      var latest = readQueue();
      names.forEach(function (n) {
        if (JSON.stringify(latest[n]) === JSON.stringify(queue[n])) { delete latest[n]; }
      });
      if (result.response.ok) {
        writeQueue(latest);
        var refused = result.body.errors && Object.keys(result.body.errors).length;
        say(refused ? text.refused + result.body.detail : text.saved, false);
        showEnabled(result.body.enabled || []);
        showUrgent(result.body.urgent || []);
        if (Object.keys(latest).length) { flush(); }
      } else if (result.response.status >= 500) {
        say(text.offline, true);
      } else {
        writeQueue(latest);  // refused for good (invalid value, link spent): do not retry
        say(text.refused + (result.body.detail || result.response.status), false);
        if (Object.keys(latest).length) { flush(); }  // changes made meanwhile still go out
      }
    }).catch(function () {
      flushing = false;
      say(text.offline, true);
    });
  }

  function queueChange(name) {
    var queue = readQueue();
    queue[name] = valueOf(name);
    writeQueue(queue);
    flush();
  }

  form.addEventListener("change", function (event) {
    var name = event.target && event.target.name;
    if (!name || name === "csrf_token" || name === "link_csrf") { return; }
    window.clearTimeout(timers[name]);
    queueChange(name);
  });
  form.addEventListener("input", function (event) {
    var target = event.target;
    if (!target || !target.name || target.type === "radio" || target.type === "checkbox") { return; }
    // Kept on the device at once (a reload or a closed tab loses nothing); sent after a pause.
    var queue = readQueue();
    queue[target.name] = valueOf(target.name);
    writeQueue(queue);
    window.clearTimeout(timers[target.name]);
    timers[target.name] = window.setTimeout(flush, PAUSE_MS);
  });

  // Answers typed while offline (and maybe reloaded since) go back into the form, then out.
  var pending = readQueue();
  Object.keys(pending).forEach(function (name) { applyValue(name, pending[name]); });
  window.addEventListener("online", flush);
  window.setInterval(function () { if (Object.keys(readQueue()).length) { flush(); } }, 10000);
  flush();
})();
