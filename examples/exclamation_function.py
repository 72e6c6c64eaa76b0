#
# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements. This file is Apache Pulsar's
# python-examples/exclamation_function.py, kept unmodified in behaviour so the
# tests prove fnworker runs Pulsar's own example functions as they are.
#

from pulsar import Function


class ExclamationFunction(Function):
  def __init__(self):
    pass

  def process(self, input, context):
    return input + '!'
