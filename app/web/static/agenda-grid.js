/* The agenda's time grid: practitioners as columns, drag and drop, resize, free-slot clicks.
 *
 * Drawn with the vendored EventCalendar (static/vendor/event-calendar, MIT). The first draw
 * reads the grid's JSON embedded in the page (#agenda-grid-data, the same document as
 * GET /agenda/grid, so no second request stands before it); redraws after a move ask
 * GET /agenda/grid. Every move or resize is confirmed in a dialog, then sent to
 * POST /agenda/appointments/{id}/grid-move, which uses the same scheduling service as the
 * move form; a refused move snaps back and shows the server's message. The keyboard path:
 * Tab to an appointment, Enter opens the same dialog with editable date, time, length and
 * practitioner. Without JavaScript the list below the grid is the agenda.
 *
 * Times are the practice's wall-clock times, sent and received without offset ("floating").
 */
(function () {
  "use strict";

  var section = document.getElementById("agenda-grid-section");
  if (!section || typeof EventCalendar === "undefined") return;

  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var messages = JSON.parse(section.dataset.messages || "{}");
  var alertBox = document.getElementById("agenda-grid-messages");
  var doneBox = document.getElementById("agenda-grid-done");
  var dialog = document.getElementById("agenda-move-dialog");
  var form = document.getElementById("agenda-move-form");
  var fields = {
    date: document.getElementById("m-date"),
    time: document.getElementById("m-time"),
    duration: document.getElementById("m-duration"),
    practitioner: document.getElementById("m-practitioner")
  };
  var what = document.getElementById("move-dialog-what");
  var openLink = document.getElementById("move-dialog-open");
  var state = { calendar: null, free: [], pending: null, busy: false, lastFocus: null };
  var timing = { start: performance.now(), renderMs: null, events: 0, appointments: 0, drawn: 0 };
  window.accueilAgendaGrid = timing; // read by the browser tests and the benchmark
  /* User Timing marks around the first render (from the start of the calendar's creation to
   * the last event drawn, layout included): performance.getEntriesByName("agenda-grid:render")
   * in the tests, the benchmark and the browser's developer tools. timing.drawn is how many
   * appointment blocks were in the grid at that mark, timing.appointments how many the data
   * holds. */
  var MARK_START = "agenda-grid:render-start";
  var MARK_END = "agenda-grid:render-end";
  var RENDER = "agenda-grid:render";
  var REDRAW = "agenda-grid:redraw";

  function fill(text, values) {
    return String(text || "").replace(/\{(\w+)\}/g, function (_, key) {
      return key in values ? String(values[key]) : "";
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* A Date from the grid, as the practice's wall-clock text (the grid works in floating time). */
  function localText(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function clock(d) { return pad(d.getHours()) + ":" + pad(d.getMinutes()); }

  /* The events' time text ("08:30–08:50"), built directly: the calendar's default runs
   * Intl.DateTimeFormat.formatRange for every block, background ones included. With the hooks
   * below reusing it (info.timeText), measured: about an eighth less CPU on the first draw. */
  function timeRange(start, end) {
    return end && end > start ? clock(start) + "–" + clock(end) : clock(start);
  }

  function parseFloating(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text);
    return m ? new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) : null;
  }

  function say(box, text) {
    box.textContent = "";
    if (text) {
      var p = document.createElement("p");
      p.className = box === alertBox ? "error" : "notice";
      p.textContent = text;
      box.appendChild(p);
    }
  }

  function badge(cls, text, title) {
    var span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    span.title = title;
    return span;
  }

  /* What an appointment block shows; built from DOM nodes (names are never parsed as HTML). */
  function eventContent(info) {
    var props = info.event.extendedProps || {};
    if (props.kind !== "appointment") return { domNodes: [] };
    var nodes = [];
    var time = document.createElement("span");
    time.className = "ev-time";
    time.textContent = info.timeText;
    nodes.push(time);
    var name = document.createElement("span");
    name.className = "ev-name";
    name.textContent = " " + props.patient;
    nodes.push(name);
    if (props.preconsultation === "submitted") nodes.push(badge("badge-pre", "Q", props.preconsultationLabel));
    if (props.redFlag) nodes.push(badge("badge-flag", "!", messages.flag));
    if (props.reason) {
      var reason = document.createElement("span");
      reason.className = "ev-reason";
      reason.textContent = props.reason;
      nodes.push(reason);
    }
    return { domNodes: nodes };
  }

  /* Data attributes and the accessible name of each block. Shaded and free bands carry their
   * span and column (data-start, data-end, data-resource); appointments carry their id and a
   * spoken label (their place is in the calendar: timing.placeOf). */
  function eventDidMount(info) {
    var props = info.event.extendedProps || {};
    var event = info.event;
    info.el.dataset.kind = props.kind || "";
    if (props.kind !== "appointment") {
      info.el.dataset.start = localText(event.start);
      info.el.dataset.end = localText(event.end);
      info.el.dataset.resource = String(event.resourceIds[0] || "");
      return;
    }
    var label = [info.timeText, props.patient, props.practitioner, props.statusLabel];
    if (props.preconsultationLabel) label.push(props.preconsultationLabel);
    if (props.redFlag) label.push(messages.flag);
    info.el.setAttribute("aria-label", label.join(", "));
    info.el.dataset.appointmentId = String(props.appointmentId);
  }

  function minutesBetween(a, b) { return Math.round((b - a) / 60000); }

  /* The dialog: the confirmation step of a drag or resize, and the keyboard's move form. */
  function openDialog(event, change) {
    var props = event.extendedProps || {};
    state.pending = { event: event, revert: change.revert || null, kind: change.kind };
    state.lastFocus = document.activeElement;
    var start = change.start, minutes = change.minutes;
    fields.date.value = localText(start).slice(0, 10);
    fields.time.value = localText(start).slice(11);
    fields.duration.value = String(minutes);
    fields.practitioner.value = String(change.resourceId);
    var practitioner = fields.practitioner.options[fields.practitioner.selectedIndex];
    what.textContent = change.kind === "resize"
      ? fill(messages.confirm_resize, { patient: props.patient, minutes: minutes })
      : fill(messages.confirm_move, {
        patient: props.patient,
        when: start.toLocaleDateString(document.documentElement.lang || "fr", {
          weekday: "short", day: "2-digit", month: "2-digit" }) + " " + localText(start).slice(11),
        practitioner: practitioner ? practitioner.textContent : ""
      });
    openLink.href = props.url;
    dialog.returnValue = "";
    dialog.showModal();
    (change.kind === "keyboard" ? fields.time : document.getElementById("move-dialog-confirm")).focus();
  }

  function closePending(revert) {
    var pending = state.pending;
    state.pending = null;
    if (pending && revert && pending.revert) pending.revert();
    if (state.lastFocus && document.contains(state.lastFocus)) state.lastFocus.focus();
  }

  function send(pending) {
    var props = pending.event.extendedProps;
    var body = {
      start: fields.date.value + "T" + fields.time.value,
      practitioner: Number(fields.practitioner.value) || null,
      duration: Number(fields.duration.value) || null
    };
    state.busy = true;
    section.setAttribute("aria-busy", "true");
    return fetch("/agenda/appointments/" + props.appointmentId + "/grid-move", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          if (pending.revert) pending.revert();
          say(doneBox, "");
          say(alertBox, data.detail || messages.failed);
          return;
        }
        say(alertBox, "");
        say(doneBox, data.offer ? data.message + " " + data.offer : data.message);
        return load();
      });
    }, function () {
      if (pending.revert) pending.revert();
      say(alertBox, messages.failed);
    }).then(function () {
      state.busy = false;
      section.removeAttribute("aria-busy");
    });
  }

  form.addEventListener("submit", function (e) {
    var submitter = e.submitter;
    var pending = state.pending;
    if (!pending) return;
    if (submitter && submitter.value === "confirm") {
      if (!form.checkValidity()) { e.preventDefault(); form.reportValidity(); return; }
      state.pending = null;
      send(pending).then(function () {
        // The grid was redrawn: give the focus back to the appointment where it now is.
        var moved = document.querySelector(
          '.ec-event[data-appointment-id="' + pending.event.extendedProps.appointmentId + '"]');
        var back = moved || state.lastFocus;
        if (back && document.contains(back)) back.focus();
      });
    } else {
      closePending(true);
    }
  });
  dialog.addEventListener("cancel", function () { closePending(true); }); // Escape

  function inFree(resourceId, date) {
    for (var i = 0; i < state.free.length; i++) {
      var f = state.free[i];
      if (f.resourceId === resourceId && f.start <= date && date < f.end) return f;
    }
    return null;
  }

  function options(data) {
    return {
      view: data.view,
      date: data.date,
      locale: document.documentElement.lang || "fr",
      firstDay: 1,
      allDaySlot: false,
      nowIndicator: true,
      editable: true,
      eventStartEditable: true,
      eventDurationEditable: true,
      slotDuration: data.slotDuration,
      eventTimeFormat: timeRange,
      snapDuration: "00:05",
      slotMinTime: data.slotMinTime,
      slotMaxTime: data.slotMaxTime,
      scrollTime: data.slotMinTime,
      height: "auto",
      headerToolbar: { start: "", center: "", end: "" },
      datesAboveResources: true,
      resources: data.resources,
      events: data.events,
      eventContent: eventContent,
      eventDidMount: eventDidMount,
      eventClick: function (info) {
        var props = info.event.extendedProps || {};
        if (props.kind !== "appointment") return;
        // Opened by Enter: without this, the same key press would submit the dialog's form.
        if (info.jsEvent && info.jsEvent.type === "keydown") info.jsEvent.preventDefault();
        if (props.status !== "booked" && props.status !== "confirmed") { window.location = props.url; return; }
        openDialog(info.event, {
          kind: "keyboard",
          start: info.event.start,
          minutes: minutesBetween(info.event.start, info.event.end),
          resourceId: info.event.resourceIds[0]
        });
      },
      eventDrop: function (info) {
        openDialog(info.event, {
          kind: "move",
          start: info.event.start,
          minutes: minutesBetween(info.event.start, info.event.end),
          resourceId: (info.newResource ? info.newResource.id : info.event.resourceIds[0]),
          revert: info.revert
        });
      },
      eventResize: function (info) {
        openDialog(info.event, {
          kind: "resize",
          start: info.event.start,
          minutes: minutesBetween(info.event.start, info.event.end),
          resourceId: info.event.resourceIds[0],
          revert: info.revert
        });
      },
      dateClick: function (info) {
        var resourceId = info.resource ? String(info.resource.id) : "";
        var slot = inFree(resourceId, info.date);
        if (!slot) return;
        window.location = "/agenda/new?practitioner=" + encodeURIComponent(resourceId) +
          "&start=" + encodeURIComponent(localText(slot.start));
      }
    };
  }

  /* Creates a calendar on ``host`` and calls ``drawn`` once all of ``data``'s events are in it
   * (then again after each later change of its events).
   *
   * The view is created first, without events, and receives them as soon as it is mounted. On
   * mount the calendar measures its header, sidebar and resource labels (offsetWidth,
   * offsetHeight, innerText: forced layouts) and writes the sizes back as CSS variables, which
   * restyles everything inside it: events present at that point are styled and laid out twice.
   * Given after the mount, they are styled and laid out once (measured: about a fifth less
   * CPU on the first draw of a week with 200 appointments). */
  function createCalendar(host, data, drawn) {
    var opts = options(data);
    var events = opts.events;
    var calendar = null;
    var given = false;
    opts.events = [];
    opts.viewDidMount = function () {
      if (given) return; // mounted again (a view change): the events are already there
      given = true;
      calendar.setOption("events", events);
    };
    /* Called on a timer once the calendar has drawn a change of its events: after the
     * microtasks that render them, so the blocks are in the page. */
    opts.eventAllUpdated = function () {
      if (given) drawn(host.querySelectorAll(".ec-event.appointment").length);
    };
    calendar = EventCalendar.create(host, opts);
    return calendar;
  }

  function appointmentCount(data) {
    var n = 0;
    for (var i = 0; i < data.events.length; i++) {
      var props = data.events[i].extendedProps;
      if (props && props.kind === "appointment") n++;
    }
    return n;
  }

  /* The page's grid: the first draw is measured (User Timing), and each draw marks the section
   * ready for the tests. */
  function gridDrawn(count) {
    timing.drawn = count;
    if (timing.renderMs === null) {
      void section.offsetHeight; // force layout, so the time includes it
      performance.mark(MARK_END);
      var entry = performance.measure(RENDER, MARK_START, MARK_END);
      timing.renderMs = entry ? entry.duration : performance.now() - timing.start;
      section.dataset.renderMs = timing.renderMs.toFixed(1);
      section.dataset.drawn = String(count);
    }
    section.dataset.ready = "1";
  }

  /* Draws the same data in a fresh, off-screen calendar, the same way as the page's, and
   * resolves with the time it took (creation to the last event drawn, layout included) and the
   * number of appointment blocks drawn: the benchmark's repeated measure. */
  timing.measure = function () {
    var data = timing.data;
    var host = document.createElement("div");
    host.className = "agenda-grid measure";
    document.body.appendChild(host);
    return new Promise(function (resolve) {
      var started = performance.now();
      var calendar = null;
      var done = false;
      calendar = createCalendar(host, data, function (count) {
        if (done) return;
        done = true;
        void host.offsetHeight; // force layout, so the time includes it
        var entry = performance.measure(REDRAW, { start: started, end: performance.now() });
        var ms = entry ? entry.duration : performance.now() - started;
        setTimeout(function () {
          if (calendar) EventCalendar.destroy(calendar);
          host.remove();
          resolve({ ms: ms, appointments: count });
        }, 0);
      });
    });
  };

  /* Where the grid currently shows an appointment ("YYYY-MM-DDTHH:MM resourceId"). */
  timing.placeOf = function (appointmentId) {
    var event = state.calendar && state.calendar.getEventById("a" + appointmentId);
    return event ? localText(event.start) + " " + event.resourceIds[0] : null;
  };

  function remember(data) {
    timing.data = data;
    state.free = (data.freeSlots || []).map(function (e) {
      return { resourceId: e.resourceId, start: parseFloating(e.start), end: parseFloating(e.end) };
    });
    timing.events = data.events.length;
    timing.appointments = appointmentCount(data);
  }

  function show(data) {
    remember(data);
    section.hidden = false;
    if (!state.calendar) {
      performance.clearMarks(MARK_START);
      performance.mark(MARK_START);
      timing.start = performance.now();
      state.calendar = createCalendar(document.getElementById("agenda-grid"), data, gridDrawn);
    } else {
      state.calendar.setOption("resources", data.resources);
      state.calendar.setOption("events", data.events);
    }
    section.dataset.loaded = String((Number(section.dataset.loaded) || 0) + 1);
  }

  function failed() {
    section.hidden = false;
    say(alertBox, messages.load_failed);
  }

  function load() {
    return fetch(section.dataset.url, {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.json();
    }).then(show).catch(failed);
  }

  /* The first week's data, embedded in the page by the server (null if absent or unreadable:
   * then it is asked for). */
  function embedded() {
    var node = document.getElementById("agenda-grid-data");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return null;
    }
  }

  var toggle = document.getElementById("agenda-list-toggle");
  var list = document.getElementById("agenda-list");
  if (toggle && list) {
    toggle.addEventListener("click", function () {
      var shown = !list.hidden;
      list.hidden = shown;
      toggle.setAttribute("aria-expanded", String(!shown));
      toggle.textContent = shown ? messages.show_list : messages.hide_list;
    });
  }

  /* Runs ``fn`` once the browser has painted the page as it stands: the grid is drawn after the
   * rest of the page (list, toolbar) has been laid out and shown, as it was when its data came
   * by a second request. */
  function afterPaint(fn) {
    requestAnimationFrame(function () { setTimeout(fn, 0); });
  }

  var first = embedded();
  if (first) {
    section.hidden = false; // title, legend and help show with the page; the grid follows
    afterPaint(function () {
      try {
        show(first);
      } catch (e) {
        failed();
      }
    });
  } else {
    load();
  }
})();
