# RFC 3894 §3
require ["copy", "fileinto"];
fileinto :copy "incoming";
