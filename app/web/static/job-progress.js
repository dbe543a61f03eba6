// Live progress of background jobs. Every element [data-job-id][data-job-active="1"] is
// polled at /admin/jobs/etat: its label, <progress> and message follow the job, and a
// finished job is announced in the page's aria-live region (#job-announcer), with a link
// to refresh the page. No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function watched() {
    return Array.prototype.slice.call(
      document.querySelectorAll('[data-job-id][data-job-active="1"]')
    );
  }

  function announce(text) {
    var region = document.getElementById("job-announcer");
    if (region) {
      region.textContent = text;
    }
  }

  function show(element, job) {
    var label = element.querySelector(".job-label");
    if (label) {
      label.textContent = job.label + (job.status === "running" ? " " + job.progress + " %" : "");
    }
    var bar = element.querySelector("progress");
    if (bar) {
      bar.value = job.progress;
      bar.textContent = job.progress + " %";
      bar.hidden = !job.active;
    }
    var message = element.querySelector(".job-message");
    if (message) {
      message.textContent = job.active ? job.message : job.error;
    }
    if (!job.active) {
      element.setAttribute("data-job-active", "0");
      var refresh = element.querySelector(".job-refresh");
      if (refresh) {
        refresh.hidden = false;
      }
      announce((element.getAttribute("data-job-name") || "") + " : " + job.label);
    }
  }

  function poll() {
    var elements = watched();
    if (!elements.length) {
      return;
    }
    var ids = elements.map(function (el) { return el.getAttribute("data-job-id"); });
    fetch("/admin/jobs/etat?ids=" + encodeURIComponent(ids.join(",")), {
      headers: { accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) { return response.ok ? response.json() : { jobs: [] }; })
      .then(function (data) {
        data.jobs.forEach(function (job) {
          elements.forEach(function (element) {
            if (element.getAttribute("data-job-id") === String(job.id)) {
              show(element, job);
            }
          });
        });
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { window.setTimeout(poll, INTERVAL_MS); });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
