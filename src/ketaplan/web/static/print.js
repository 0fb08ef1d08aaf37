// The pump sheet's print button (the only script of the dashboard; the page works without it: Ctrl+P).
document.getElementById("print").addEventListener("click", () => window.print());
