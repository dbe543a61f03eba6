// Physician review page. A summary sentence (.sentence[data-sources]) that has the pointer or
// the keyboard focus highlights the answers it cites (.answer[data-link-id] gets "cited").
// Without JavaScript each sentence still lists its sources as links to the answers.
// A letter still being written ([data-letter-pending]) reloads the page once it is ready.
(function () {
  "use strict";

  function cite(sentence, on) {
    var wanted = (sentence.getAttribute("data-sources") || "").split(" ").filter(Boolean);
    var answers = document.querySelectorAll(".answer[data-link-id]");
    Array.prototype.forEach.call(answers, function (answer) {
      var hit = on && wanted.indexOf(answer.getAttribute("data-link-id")) !== -1;
      answer.classList.toggle("cited", hit);
    });
    sentence.classList.toggle("citing", on);
  }

  function sentenceOf(target) {
    return target && target.closest ? target.closest(".sentence[data-sources]") : null;
  }

  ["mouseover", "focusin"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var sentence = sentenceOf(event.target);
      if (sentence) {
        cite(sentence, true);
      }
    });
  });
  ["mouseout", "focusout"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var sentence = sentenceOf(event.target);
      if (sentence && !sentence.contains(event.relatedTarget)) {
        cite(sentence, false);
      }
    });
  });

  var pending = document.querySelector("[data-letter-pending]");
  if (pending) {
    var id = pending.getAttribute("data-letter-pending");
    var poll = function () {
      fetch("/medecin/documents/" + encodeURIComponent(id) + "/etat", {
        headers: { accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (data && data.state !== "pending") {
            window.location.reload();
          } else {
            window.setTimeout(poll, 2000);
          }
        })
        .catch(function () { window.setTimeout(poll, 4000); });
    };
    window.setTimeout(poll, 2000);
  }
})();
