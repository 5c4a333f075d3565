# RFC 5228 §2.4.2.4
require ["encoded-character", "fileinto"];
if header :contains "Subject" "$${hex:24 24}" {
   discard;
}
fileinto "Ein unerh${unicode:00F6}rt gro${UNICODE: DF }er Test${hex:}";
