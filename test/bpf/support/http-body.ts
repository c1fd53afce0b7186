// Prints the body of one GET (run inside a test namespace).
const r = await fetch(process.argv[2]!);
process.stdout.write(await r.text());
