// Progressive enhancement: show the dial's value while it moves. The form
// works without it.
document.querySelectorAll("input[type=range]").forEach(function (r) {
  var out = document.getElementById(r.id + "-value");
  if (out) r.addEventListener("input", function () { out.value = r.value; });
});
