#include "backends/sparql.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include <curl/curl.h>

namespace strata {

namespace {

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

/// The first lines of a server's error page, enough to say what failed.
std::string summary(const std::string& body) {
  auto end = body.find("\n\n");
  auto text = body.substr(0, std::min<size_t>(end, 400));
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

} // namespace

struct sparql_client::handle {
  CURL* curl = nullptr;
  curl_slist* headers = nullptr;

  ~handle() {
    if (headers != nullptr)
      curl_slist_free_all(headers);
    if (curl != nullptr)
      curl_easy_cleanup(curl);
  }
};

sparql_client::sparql_client(const graph_settings& settings)
  : settings_(settings), handle_(std::make_unique<handle>()) {
  // Not thread-safe itself, so once, before any handle exists.
  static std::once_flag global;
  std::call_once(global, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto& h = *handle_;
  h.curl = curl_easy_init();
  if (h.curl == nullptr)
    throw sparql_error{sparql_error::kind::unreachable, "cannot create an HTTP client"};
  h.headers = curl_slist_append(h.headers, "Accept: application/sparql-results+json");
  // No "Expect: 100-continue" wait before large bodies.
  h.headers = curl_slist_append(h.headers, "Expect:");
  auto c = h.curl;
  curl_easy_setopt(c, CURLOPT_URL, settings_.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<uint64_t>(settings_.timeout_ms, 10000)));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  if (!settings_.username.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_DIGEST | CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, settings_.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, settings_.password.c_str());
  }
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, settings_.tls_verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, settings_.tls_verify ? 2L : 0L);
  if (!settings_.ca_file.empty())
    curl_easy_setopt(c, CURLOPT_CAINFO, settings_.ca_file.c_str());
  if (!settings_.cert_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, settings_.cert_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, settings_.key_file.c_str());
  }
}

sparql_client::~sparql_client() = default;

std::string sparql_client::post(std::string_view field, std::string_view text) {
  auto escaped = curl_easy_escape(handle_->curl, text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr)
    throw sparql_error{sparql_error::kind::unreachable, "out of memory encoding a request"};
  std::string body{field};
  body += '=';
  body += escaped;
  curl_free(escaped);
  std::minstd_rand rng{std::random_device{}()};
  for (int attempt = 0;; ++attempt) {
    bool deadlocked = false;
    auto answer = post_once(body, deadlocked);
    if (!deadlocked)
      return answer;
    if (attempt == deadlock_retries)
      throw sparql_error{sparql_error::kind::deadlock,
                         "SPARQL server aborted the request as deadlocked "
                           + std::to_string(attempt + 1) + " times: " + summary(answer) + " ("
                           + settings_.url + ")"};
    // Apart from the writer it collided with, and a little longer each time.
    auto pause = 1 + static_cast<int>(rng() % 5) * std::min(attempt + 1, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds{pause});
  }
}

std::string sparql_client::post_once(const std::string& body, bool& deadlocked) {
  auto c = handle_->curl;
  std::string answer;
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  auto rc = curl_easy_perform(c);
  auto where = " (" + settings_.url + ")";
  if (rc != CURLE_OK) {
    auto never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST
                      || rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR
                      || rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE
                      || rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_UNSUPPORTED_PROTOCOL
                      || rc == CURLE_URL_MALFORMAT;
    throw sparql_error{never_sent ? sparql_error::kind::unreachable : sparql_error::kind::lost,
                       std::string{"SPARQL server: "} + curl_easy_strerror(rc) + where};
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status == 401 || status == 403)
    throw sparql_error{sparql_error::kind::unauthorized,
                       "SPARQL server refused the credentials (HTTP " + std::to_string(status)
                         + ")" + where};
  if (status >= 200 && status < 300)
    return answer;
  // Virtuoso: "Virtuoso 40001 Error SR172: Transaction deadlocked".
  auto head = answer.substr(0, answer.find('\n'));
  if (head.find(" 40001 ") != std::string::npos) {
    deadlocked = true;
    return answer;
  }
  throw sparql_error{sparql_error::kind::refused, "SPARQL server answered HTTP "
                                                    + std::to_string(status) + ": "
                                                    + summary(answer) + where};
}

std::string sparql_client::query(std::string_view text) {
  return post("query", text);
}

void sparql_client::update(std::string_view text) {
  post("update", text);
}

} // namespace strata
