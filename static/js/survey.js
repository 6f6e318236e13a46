/* The survey form's one enhancement: the "why?" prompt follows the chosen score's band as the
   partner taps, as the server does for ?score=N. The form works the same without it. */
(function () {
  "use strict";
  var why = document.querySelector(".why[data-prompt-none]");
  var prompt = why && why.querySelector(".why-prompt");
  if (!prompt) { return; }
  document.addEventListener("change", function (event) {
    var band = event.target && event.target.getAttribute("data-band");
    if (event.target.name === "score" && band) {
      prompt.textContent = why.getAttribute("data-prompt-" + band) || prompt.textContent;
    }
  });
})();
