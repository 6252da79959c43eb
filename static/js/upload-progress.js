/* Upload progress for htmx forms that name a <progress> in data-upload-progress (the rules
   import, templates/console/rules/transfer.html). htmx reports the bytes sent as
   `htmx:xhr:progress` on the form; the bar shows them while the file goes up, says when the
   server is reading it, and hides once the answer is in. No framework: three listeners. */
(function () {
  function bar(event) {
    var form = event.target.closest && event.target.closest("form[data-upload-progress]");
    return form ? document.getElementById(form.dataset.uploadProgress) : null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var progress = bar(event);
    if (!progress) return;
    progress.value = 0;
    progress.hidden = false;
    progress.textContent = "Uploading…";
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var progress = bar(event);
    if (!progress || !event.detail.lengthComputable) return;
    var percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    progress.value = percent;
    progress.textContent = percent + "%";
    // Sent, not yet answered: the server is checking every row.
    if (percent >= 100) progress.removeAttribute("value");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var progress = bar(event);
    if (progress) progress.hidden = true;
  });
})();
