# Ruby's aws-sdk-core as a credential_process consumer (tests/test_interop.py).
#
# usage: ruby caller_identity.rb ENDPOINT CALLS
#
# One Aws::STS::Client, whose credentials come from the profile in $AWS_PROFILE through
# the SDK's default chain (its credential_process runs credproc), calls GetCallerIdentity
# CALLS times at ENDPOINT. The endpoint is set in code: this SDK version ignores
# AWS_ENDPOINT_URL_STS. Prints one JSON object: {"sdk", "calls": [...]} or {"sdk", "error"}.
require 'json'
require 'aws-sdk-core'

endpoint = ARGV.fetch(0)
calls = Integer(ARGV.fetch(1, '1'))
sdk = "ruby aws-sdk-core #{Aws::CORE_GEM_VERSION}"
begin
  client = Aws::STS::Client.new(endpoint: endpoint, region: 'us-east-1', retry_limit: 0)
  results = Array.new(calls) do
    answer = client.get_caller_identity
    { 'Account' => answer.account, 'Arn' => answer.arn }
  end
  puts JSON.generate('sdk' => sdk, 'calls' => results)
rescue StandardError => e
  puts JSON.generate('sdk' => sdk, 'error' => "#{e.class}: #{e.message}")
  exit 1
end
