// The question index: filter by cluster and difficulty, and switch between the self-test view
// (answers folded until clicked) and the study view (every answer open). The state lives in the
// URL query (?cluster=05&difficulty=H&answers=open), so a filtered view can be shared; ?reveal=ID
// opens one question's answer as a click on it would.
(function () {
  "use strict";

  function setup() {
    var panel = document.getElementById("question-filters");
    if (!panel) { return; }
    var cluster = document.getElementById("filter-cluster");
    var difficulty = document.getElementById("filter-difficulty");
    var openAll = document.getElementById("show-answers");
    var count = document.getElementById("question-count");
    var cards = Array.prototype.slice.call(document.querySelectorAll("div.mllab-q"));
    var query = new URLSearchParams(window.location.search);
    cluster.value = query.get("cluster") || "";
    difficulty.value = query.get("difficulty") || "";
    openAll.checked = query.get("answers") === "open";

    function apply(updateUrl) {
      var shown = 0;
      cards.forEach(function (card) {
        // docutils lower-cases class names: q-diff-e, q-diff-m, q-diff-h
        var match = (!cluster.value || card.classList.contains("q-cluster-" + cluster.value)) &&
                    (!difficulty.value || card.classList.contains("q-diff-" + difficulty.value.toLowerCase()));
        card.style.display = match ? "" : "none";
        card.setAttribute("data-shown", match ? "yes" : "no");
        if (match) { shown += 1; }
      });
      document.querySelectorAll("section").forEach(function (section) {
        var inside = section.querySelectorAll("div.mllab-q");
        if (inside.length === 0) { return; }
        var visible = Array.prototype.some.call(inside, function (c) { return c.style.display !== "none"; });
        section.style.display = visible ? "" : "none";
      });
      count.textContent = shown + " of " + cards.length + " questions shown";
      if (updateUrl) {
        var next = new URLSearchParams();
        if (cluster.value) { next.set("cluster", cluster.value); }
        if (difficulty.value) { next.set("difficulty", difficulty.value); }
        if (openAll.checked) { next.set("answers", "open"); }
        var search = next.toString();
        window.history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
      }
    }

    function setAnswers() {
      cards.forEach(function (card) {
        card.querySelectorAll("details").forEach(function (details) { details.open = openAll.checked; });
      });
    }

    cluster.addEventListener("change", function () { apply(true); });
    difficulty.addEventListener("change", function () { apply(true); });
    openAll.addEventListener("change", function () { setAnswers(); apply(true); });
    apply(false);
    setAnswers();
    var reveal = query.get("reveal");
    if (reveal) {
      var card = document.getElementById("q-" + reveal.toLowerCase());
      var summary = card && card.querySelector("details > summary");
      if (summary) { summary.click(); }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
