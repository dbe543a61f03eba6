/* Voice input: record (or pick an audio file), send it to be transcribed on the box, and add the
   text to a field, which the user then reviews. No inline script, nothing loaded from outside.

   Markup contract (the Jinja macros in app/templates/speech/_voice.html write it):

     <link rel="stylesheet" href="/static/voice.css">
     <script src="/static/js/voice.js" defer></script>
     <meta name="csrf-token" content="...">            sent as header x-csrf-token (staff and patient pages)

     <textarea id="note"></textarea>
     <div data-voice-box hidden>                        optional wrapper, shown once voice works here
       <button type="button" hidden?                    a record/stop toggle (aria-pressed)
               data-voice-target="note"                 id of the textarea or input to append to
               data-voice-url="/api/speech/transcriptions"   POST multipart "file" (+ "language")
               data-voice-max-seconds="180"             optional: recording stops by itself (180)
               data-voice-language="fr"                 optional: sent as the form field "language"
               data-voice-link-csrf="..."               optional: sent as x-link-csrf (patient link;
                                                        else taken from the closest [data-link-csrf])
               data-voice-status="status-id">           optional: an aria-live element for messages
         Dicter</button>                                (else one is created after the control)
       <input type="file" accept="audio/*" data-voice-target="note" data-voice-url="...">
     </div>                                             a file input sends the chosen recording

   Messages: a JSON block <script type="application/json" id="voice-i18n"> (the macro voice_assets()
   writes it from the locale catalogs), else the French/English texts below, by <html lang>.
   The server answers NDJSON progress lines ({"progress": 0.4, "text": ...}, then a line with
   "done": true, "text", "heard", "message"; or {"error": ...}); a 4xx answers {"detail": ...}.
   The text is appended (never replacing what was typed), then "input" and "change" events are
   fired on the field so autosave runs. Escape while recording cancels it. */
(function () {
  "use strict";

  var lang = document.documentElement.lang === "en" ? "en" : "fr";
  var builtIn = {
    fr: {
      starting: "Ouverture du micro…",
      recording: "Enregistrement en cours. Appuyez sur « Arrêter l'enregistrement » quand vous avez fini.",
      uploading: "Envoi de l'enregistrement…",
      transcribing: "Transcription en cours… {percent} %",
      done: "Texte ajouté. Relisez-le et corrigez-le si besoin.",
      nothing_heard: "Rien n'a été entendu. Parlez plus près du micro et réessayez, ou écrivez votre texte.",
      mic_denied: "Le micro n'est pas accessible. Autorisez-le dans le navigateur, ou écrivez votre texte.",
      too_long: "Durée maximale atteinte : l'enregistrement a été arrêté.",
      failed: "La transcription n'a pas abouti : {detail}",
      offline: "Pas de connexion au cabinet. Réessayez dans un instant.",
      stop: "Arrêter l'enregistrement"
    },
    en: {
      starting: "Opening the microphone…",
      recording: "Recording. Press “Stop recording” when you are done.",
      uploading: "Sending the recording…",
      transcribing: "Transcribing… {percent} %",
      done: "Text added. Read it and correct it if needed.",
      nothing_heard: "Nothing was heard. Speak closer to the microphone and try again, or type your text.",
      mic_denied: "The microphone is not available. Allow it in the browser, or type your text.",
      too_long: "Maximum length reached: the recording was stopped.",
      failed: "The transcription did not succeed: {detail}",
      offline: "No connection to the practice. Try again in a moment.",
      stop: "Stop recording"
    }
  }[lang];
  var text = builtIn;
  var block = document.getElementById("voice-i18n");
  if (block) {
    try {
      var fromPage = JSON.parse(block.textContent || "{}");
      text = {};
      Object.keys(builtIn).forEach(function (k) { text[k] = fromPage[k] || builtIn[k]; });
    } catch (e) { text = builtIn; }
  }

  function fill(message, values) {
    return message.replace(/\{(\w+)\}/g, function (all, name) {
      return values && values[name] !== undefined ? values[name] : all;
    });
  }

  var canRecord = !!(window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  var canUpload = !!(window.fetch && window.FormData);

  function pickType() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported(types[i])) { return types[i]; }
    }
    return "";
  }

  function extension(type) {
    if (type.indexOf("ogg") >= 0) { return "ogg"; }
    if (type.indexOf("mp4") >= 0) { return "m4a"; }
    return "webm";
  }

  function clock(seconds) {
    var s = Math.floor(seconds % 60);
    return Math.floor(seconds / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  function Voice(control) {
    this.control = control;
    this.isButton = control.tagName === "BUTTON";
    this.target = document.getElementById(control.getAttribute("data-voice-target"));
    this.url = control.getAttribute("data-voice-url");
    this.maxSeconds = parseInt(control.getAttribute("data-voice-max-seconds") || "180", 10) || 180;
    this.language = control.getAttribute("data-voice-language") || "";
    this.label = control.textContent;
    this.busy = false;
    this.recorder = null;
    this.box = control.closest("[data-voice-box]") || control.parentNode;
    this.status = document.getElementById(control.getAttribute("data-voice-status") || "");
    if (!this.status) {
      this.status = document.createElement("p");
      this.status.className = "voice-status";
      this.status.setAttribute("role", "status");
      this.status.setAttribute("aria-live", "polite");
      this.box.appendChild(this.status);
    }
    this.timer = document.createElement("span");
    this.timer.className = "voice-timer";
    this.timer.setAttribute("role", "timer");
    this.timer.hidden = true;
    this.progress = document.createElement("progress");
    this.progress.className = "voice-progress";
    this.progress.max = 100;
    this.progress.hidden = true;
    this.progress.setAttribute("aria-hidden", "true");  // the status line says the same
    control.insertAdjacentElement("afterend", this.timer);
    this.status.insertAdjacentElement("beforebegin", this.progress);
  }

  Voice.prototype.say = function (message, kind) {
    this.status.textContent = message;
    this.status.className = "voice-status" + (kind ? " voice-" + kind : "");
  };

  Voice.prototype.setBusy = function (busy) {
    this.busy = busy;
    this.control.setAttribute("aria-busy", busy ? "true" : "false");
    if (this.isButton) { this.control.setAttribute("aria-disabled", busy ? "true" : "false"); }
    if (!this.isButton) { this.control.disabled = busy; }
  };

  Voice.prototype.headers = function () {
    var headers = { "accept": "application/x-ndjson" };
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) { headers["x-csrf-token"] = meta.content; }
    var link = this.control.getAttribute("data-voice-link-csrf");
    if (!link) {
      var holder = this.control.closest("[data-link-csrf]");
      link = holder ? holder.getAttribute("data-link-csrf") : "";
    }
    if (link) { headers["x-link-csrf"] = link; }
    return headers;
  };

  Voice.prototype.insert = function (words) {
    var field = this.target;
    if (!field || !words) { return; }
    var current = field.value;
    var joined = current && !/\s$/.test(current) ? current + " " + words : current + words;
    var limit = parseInt(field.getAttribute("maxlength") || "0", 10);
    field.value = limit > 0 ? joined.slice(0, limit) : joined;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
    field.focus();
    try { field.setSelectionRange(field.value.length, field.value.length); } catch (e) { /* some inputs */ }
  };

  Voice.prototype.finish = function (line) {
    this.progress.hidden = true;
    this.setBusy(false);
    if (line.error) { this.say(fill(text.failed, { detail: line.error }), "error"); return; }
    if (!line.text) { this.say(line.message || text.nothing_heard, "warn"); return; }
    this.insert(line.text);
    this.say(text.done, "ok");
  };

  Voice.prototype.upload = function (blob, filename) {
    var self = this;
    var body = new FormData();
    body.append("file", blob, filename);
    if (self.language) { body.append("language", self.language); }
    self.setBusy(true);
    self.say(text.uploading);
    self.progress.removeAttribute("value");  // indeterminate until the first segment
    self.progress.hidden = false;
    var last = null;

    function handle(raw) {
      if (!raw.trim()) { return; }
      var line;
      try { line = JSON.parse(raw); } catch (e) { return; }
      if (line.error || line.done) { last = line; return; }
      if (typeof line.progress === "number") {
        var percent = Math.round(line.progress * 100);
        self.progress.value = percent;
        self.say(fill(text.transcribing, { percent: percent }));
      }
    }

    fetch(self.url, { method: "POST", credentials: "same-origin", headers: self.headers(), body: body })
      .then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (payload) {
            self.finish({ error: payload.detail || response.status });
          });
        }
        self.say(fill(text.transcribing, { percent: 0 }));
        if (!response.body || !window.TextDecoder) {
          return response.text().then(function (all) {
            all.split("\n").forEach(handle);
            self.finish(last || { error: response.status });
          });
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var pending = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              handle(pending);
              self.finish(last || { error: text.offline });
              return;
            }
            pending += decoder.decode(chunk.value, { stream: true });
            var lines = pending.split("\n");
            pending = lines.pop();
            lines.forEach(handle);
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        self.progress.hidden = true;
        self.setBusy(false);
        self.say(text.offline, "error");
      });
  };

  Voice.prototype.showRecording = function (on) {
    this.control.setAttribute("aria-pressed", on ? "true" : "false");
    this.control.textContent = on ? text.stop : this.label;
    this.timer.hidden = !on;
    this.timer.textContent = on ? "0:00" : "";
  };

  Voice.prototype.start = function () {
    var self = this;
    self.say(text.starting);
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var type = pickType();
      var recorder;
      try { recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined); }
      catch (e) { recorder = new MediaRecorder(stream); }
      var chunks = [];
      var started = Date.now();
      self.recorder = recorder;
      self.cancelled = false;
      recorder.ondataavailable = function (event) { if (event.data && event.data.size) { chunks.push(event.data); } };
      recorder.onstop = function () {
        window.clearInterval(self.tick);
        stream.getTracks().forEach(function (track) { track.stop(); });
        self.recorder = null;
        self.showRecording(false);
        if (self.cancelled) { self.say(""); return; }
        var mime = recorder.mimeType || type || "audio/webm";
        self.upload(new Blob(chunks, { type: mime }), "enregistrement." + extension(mime));
      };
      self.tick = window.setInterval(function () {
        var seconds = (Date.now() - started) / 1000;
        self.timer.textContent = clock(seconds);
        if (seconds >= self.maxSeconds && recorder.state === "recording") {
          recorder.stop();
          self.say(text.too_long);
        }
      }, 250);
      recorder.start(1000);
      self.showRecording(true);
      self.say(text.recording);
    }).catch(function () {
      self.showRecording(false);
      self.say(text.mic_denied, "error");
    });
  };

  Voice.prototype.stop = function (cancel) {
    if (!this.recorder || this.recorder.state !== "recording") { return; }
    this.cancelled = !!cancel;
    this.recorder.stop();
  };

  Voice.prototype.attach = function () {
    var self = this;
    if (self.isButton) {
      self.control.addEventListener("click", function () {
        if (self.busy) { return; }
        if (self.recorder) { self.stop(false); } else { self.start(); }
      });
      self.control.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && self.recorder) { event.preventDefault(); self.stop(true); }
      });
    } else {
      self.control.addEventListener("change", function () {
        var file = self.control.files && self.control.files[0];
        if (!file || self.busy) { return; }
        self.upload(file, file.name || "enregistrement");
        self.control.value = "";
      });
    }
  };

  document.querySelectorAll("[data-voice-target][data-voice-url]").forEach(function (control) {
    var isButton = control.tagName === "BUTTON";
    if (!canUpload || (isButton && !canRecord)) { return; }  // stays hidden: typing still works
    if (!document.getElementById(control.getAttribute("data-voice-target"))) { return; }
    new Voice(control).attach();
    control.hidden = false;
    var box = control.closest("[data-voice-box]");
    if (box) { box.hidden = false; }
  });
})();
